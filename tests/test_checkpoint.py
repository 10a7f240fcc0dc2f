"""SD1.5 single-file checkpoints: LDM layout → the pipeline's modules, offline and strict.

The checkpoint is made here from seeded tiny diffusers / transformers models with SD1.5's
layout (same block types, two layers per block), by the LDM ↔ diffusers key table
written out independently of the code under test.
"""

import gzip
import json
import socket

import pytest
import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from safetensors.torch import save_file
from transformers import CLIPTextConfig, CLIPTextModel

from dragpd.checkpoint import (
    Sd15Architecture,
    convert_text_encoder,
    fingerprint,
    split_sd15_checkpoint,
)
from dragpd.pipeline import DragPDPipeline
from dragpd.prompt import clip_token_ids
from dragpd.unet_configs import SD15_TEXT_ENCODER, SD15_UNET, SD15_VAE

TINY = Sd15Architecture(
    unet={**SD15_UNET, "block_out_channels": (32, 32, 64, 64), "cross_attention_dim": 32,
          "norm_num_groups": 8, "sample_size": 8},
    vae={**SD15_VAE, "block_out_channels": (16, 16, 32, 32), "norm_num_groups": 8,
         "sample_size": 32},
    text_encoder={**SD15_TEXT_ENCODER, "hidden_size": 32, "intermediate_size": 37,
                  "num_attention_heads": 4, "num_hidden_layers": 2, "projection_dim": 32},
)  # fmt: skip
CAT = [49406, 320, 1125, 539, 320, 2368, 49407]  # "a photo of a cat", SD1.5's CLIPTokenizer

# --- diffusers → LDM, SD1.5's layout: 4 levels, 2 layers per block -------------------------

UNET_RESNET = {
    "norm1": "in_layers.0",
    "conv1": "in_layers.2",
    "time_emb_proj": "emb_layers.1",
    "norm2": "out_layers.0",
    "conv2": "out_layers.3",
    "conv_shortcut": "skip_connection",
}
VAE_RESNET = {"conv_shortcut": "nin_shortcut"}
VAE_ATTENTION = {
    "group_norm": "norm",
    "to_q": "q",
    "to_k": "k",
    "to_v": "v",
    "to_out.0": "proj_out",
}


def unet_table() -> dict[str, str]:
    table = {
        "conv_in.": "input_blocks.0.0.",
        "time_embedding.linear_1.": "time_embed.0.",
        "time_embedding.linear_2.": "time_embed.2.",
        "mid_block.resnets.0.": "middle_block.0.",
        "mid_block.attentions.0.": "middle_block.1.",
        "mid_block.resnets.1.": "middle_block.2.",
        "conv_norm_out.": "out.0.",
        "conv_out.": "out.2.",
    }
    for i in range(4):
        for j in range(2):
            table[f"down_blocks.{i}.resnets.{j}."] = f"input_blocks.{3 * i + j + 1}.0."
            table[f"down_blocks.{i}.attentions.{j}."] = f"input_blocks.{3 * i + j + 1}.1."
        table[f"down_blocks.{i}.downsamplers.0.conv."] = f"input_blocks.{3 * i + 3}.0.op."
        for j in range(3):
            table[f"up_blocks.{i}.resnets.{j}."] = f"output_blocks.{3 * i + j}.0."
            table[f"up_blocks.{i}.attentions.{j}."] = f"output_blocks.{3 * i + j}.1."
        upsampler = 2 if i > 0 else 1  # after the attention in cross-attention up-blocks
        table[f"up_blocks.{i}.upsamplers.0.conv."] = f"output_blocks.{3 * i + 2}.{upsampler}.conv."
    return table


def vae_table() -> dict[str, str]:
    table = {"quant_conv.": "quant_conv.", "post_quant_conv.": "post_quant_conv."}
    for part in ("encoder", "decoder"):
        table[f"{part}.conv_in."] = f"{part}.conv_in."
        table[f"{part}.conv_norm_out."] = f"{part}.norm_out."
        table[f"{part}.conv_out."] = f"{part}.conv_out."
        table[f"{part}.mid_block.resnets.0."] = f"{part}.mid.block_1."
        table[f"{part}.mid_block.resnets.1."] = f"{part}.mid.block_2."
        table[f"{part}.mid_block.attentions.0."] = f"{part}.mid.attn_1."
    for i in range(4):
        for j in range(2):
            table[f"encoder.down_blocks.{i}.resnets.{j}."] = f"encoder.down.{i}.block.{j}."
        table[f"encoder.down_blocks.{i}.downsamplers.0."] = f"encoder.down.{i}.downsample."
        for j in range(3):  # the decoder's levels are numbered from the bottom in LDM
            table[f"decoder.up_blocks.{i}.resnets.{j}."] = f"decoder.up.{3 - i}.block.{j}."
        table[f"decoder.up_blocks.{i}.upsamplers.0."] = f"decoder.up.{3 - i}.upsample."
    return table


def to_ldm(state: dict, table: dict[str, str], resnet: dict, attention: dict | None = None):
    out = {}
    for key, value in state.items():
        prefix = next(p for p in table if key.startswith(p))
        rest = key[len(prefix) :]
        renames = (
            resnet if ".resnets." in prefix else (attention or {}) if "attention" in prefix else {}
        )
        for new, old in renames.items():
            if rest.startswith(new + "."):
                rest = old + rest[len(new) :]
                if renames is attention and rest.endswith("weight") and old != "norm":
                    value = value[:, :, None, None]  # LDM's VAE attention: 1×1 convolutions
                break
        out[table[prefix] + rest] = value.contiguous().clone()
    return out


def ldm_checkpoint(unet, vae, text) -> dict[str, torch.Tensor]:
    """An SD1.5-style single-file state dict holding the three models."""
    text_prefix = "cond_stage_model.transformer." + (
        "" if hasattr(text, "text_model") else "text_model."
    )
    state = {"alphas_cumprod": torch.linspace(1, 0, 1000)}  # schedule buffers: not a model's
    for prefix, sd in (
        ("model.diffusion_model.", to_ldm(unet.state_dict(), unet_table(), UNET_RESNET)),
        ("first_stage_model.", to_ldm(vae.state_dict(), vae_table(), VAE_RESNET, VAE_ATTENTION)),
        (text_prefix, {k: v.clone() for k, v in text.state_dict().items()}),
    ):
        state.update({prefix + k: v for k, v in sd.items()})
    # older files keep the position ids, some merges as corrupted floats
    state[text_prefix + "embeddings.position_ids"] = torch.arange(77.0)[None] + 0.3
    return state


@pytest.fixture(scope="module")
def reference():
    """Seeded tiny models; every weight perturbed so no two layers are alike."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        unet = UNet2DConditionModel(**TINY.unet)
        vae = AutoencoderKL(**TINY.vae)
        text = CLIPTextModel(CLIPTextConfig(**TINY.text_encoder))
        with torch.no_grad():
            for model in (unet, vae, text):
                for p in model.parameters():
                    p.add_(torch.randn_like(p) * 0.05)
    return unet.eval(), vae.eval(), text.eval()


@pytest.fixture(scope="module")
def ldm_state(reference):
    return ldm_checkpoint(*reference)


@pytest.fixture(scope="module")
def checkpoint_file(ldm_state, tmp_path_factory):
    path = tmp_path_factory.mktemp("sd15") / "tiny-sd15.safetensors"
    save_file(ldm_state, str(path))
    return path


def assert_same_models(pipe: DragPDPipeline, reference) -> None:
    unet, vae, text = reference
    g = torch.Generator().manual_seed(1)
    latent, context = torch.randn(1, 4, 16, 16, generator=g), torch.randn(1, 77, 32, generator=g)
    image = torch.rand(1, 3, 32, 32, generator=g) * 2 - 1
    with torch.no_grad():
        for model, ref in ((pipe.unet, unet),):
            torch.testing.assert_close(
                model(latent, 500, encoder_hidden_states=context).sample,
                ref(latent, 500, encoder_hidden_states=context).sample,
                atol=1e-5,
                rtol=1e-5,
            )
        torch.testing.assert_close(
            pipe.vae.encode(image).latent_dist.mean, vae.encode(image).latent_dist.mean
        )
        torch.testing.assert_close(pipe.vae.decode(latent).sample, vae.decode(latent).sample)
        ids = torch.tensor([CAT + [49407] * 70])
        expected = text(ids).last_hidden_state
    torch.testing.assert_close(pipe.encode_prompt("a photo of a cat"), expected)


def test_single_file_pipeline_runs_the_checkpoints_models(checkpoint_file, reference, monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("from_single_file tried to open a connection")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    pipe = DragPDPipeline.from_single_file(checkpoint_file, architecture=TINY)
    monkeypatch.undo()
    assert_same_models(pipe, reference)
    assert pipe.model == "sd15" and pipe.model_key.startswith("sd15:")
    assert pipe.vae.config.scaling_factor == 0.18215 and pipe.vae_factor == 8
    assert not any(p.requires_grad for p in pipe.unet.parameters())
    with torch.inference_mode():  # the conditioning is a constant autograd may use later
        embedding = pipe.encode_prompt("a photo of a cat")
    assert embedding.shape == (1, 77, 32) and not embedding.is_inference()
    assert not embedding.requires_grad


def test_models_take_the_dtype_asked_for(checkpoint_file):
    pipe = DragPDPipeline.from_single_file(checkpoint_file, architecture=TINY, dtype=torch.bfloat16)
    for model in (pipe.unet, pipe.vae):
        assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    assert pipe.encode_prompt("a cat").dtype == torch.bfloat16


def test_ckpt_in_a_state_dict_with_ema_loads_the_ema_unet(
    ldm_state, reference, checkpoint_file, tmp_path
):
    """``v1-5-pruned.ckpt`` style: training weights + LDM's flat-named EMA copy."""
    state = dict(ldm_state)
    for key in [k for k in state if k.startswith("model.diffusion_model.")]:
        state["model_ema." + key.removeprefix("model.").replace(".", "")] = state[key]
        state[key] = torch.zeros_like(state[key])  # the training weights: not used
    path = tmp_path / "tiny.ckpt"
    torch.save({"state_dict": state, "global_step": 1}, path)
    pipe = DragPDPipeline.from_single_file(path, architecture=TINY)
    assert_same_models(pipe, reference)
    # the weights used name the model, not the file
    assert (
        pipe.model_key
        == DragPDPipeline.from_single_file(checkpoint_file, architecture=TINY).model_key
    )


def test_fingerprint_changes_with_any_weight(ldm_state):
    changed = dict(ldm_state)
    key = "model.diffusion_model.middle_block.1.proj_out.weight"
    changed[key] = changed[key] + 1e-3
    assert fingerprint(ldm_state) == fingerprint(dict(ldm_state))
    assert fingerprint(changed) != fingerprint(ldm_state)


def test_text_encoder_keys_with_or_without_text_model(ldm_state):
    old = {k.replace("transformer.text_model.", "transformer."): v for k, v in ldm_state.items()}
    flat = convert_text_encoder(split_sd15_checkpoint(old)[2])
    assert flat == convert_text_encoder(split_sd15_checkpoint(ldm_state)[2])
    assert "embeddings.token_embedding.weight" in flat and "embeddings.position_ids" not in flat
    nested = convert_text_encoder(split_sd15_checkpoint(old)[2], nested=True)
    assert nested == {"text_model." + k: v for k, v in flat.items()}


# --- tokenizer --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tokenizer():
    from open_clip.tokenizer import SimpleTokenizer

    return SimpleTokenizer()


def test_token_ids_are_sd15s(tokenizer):
    ids = clip_token_ids("a photo of a cat", tokenizer)
    assert ids.dtype == torch.long and ids.tolist() == [CAT + [49407] * 70]
    long = clip_token_ids("a cat " * 60, tokenizer)[0].tolist()
    assert len(long) == 77 and long[0] == 49406 and long[76] == 49407 and long[75] != 49407


def test_token_ids_match_transformers_clip_tokenizer(tokenizer, tmp_path):
    """HF's CLIPTokenizer, given the same BPE files, pads and truncates as SD1.5 does."""
    from open_clip.tokenizer import default_bpe
    from transformers import CLIPTokenizer

    vocab = {k: v for k, v in tokenizer.encoder.items() if v < 49406}
    vocab.update({"<|startoftext|>": 49406, "<|endoftext|>": 49407})
    (tmp_path / "vocab.json").write_text(json.dumps(vocab))
    with gzip.open(default_bpe(), "rt", encoding="utf-8") as bpe:
        merges = bpe.read().split("\n")[1 : 49152 - 256 - 2 + 1]  # as CLIPTokenizer reads them
    (tmp_path / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    hf = CLIPTokenizer(str(tmp_path / "vocab.json"), str(tmp_path / "merges.txt"))
    for text in ["a photo of a cat", "A Photo, of the CAT!  it's 3.5 m tall", "", "dog " * 90]:
        expected = hf(text, padding="max_length", max_length=77, truncation=True).input_ids
        assert clip_token_ids(text, tokenizer)[0].tolist() == expected, text


# --- refusals -----------------------------------------------------------------------------


def _replace_all(suffix: str, make):
    return lambda s: {k: make(v) if k.endswith(suffix) else v for k, v in s.items()}


def _drop(prefix: str):
    return lambda s: {k: v for k, v in s.items() if not k.startswith(prefix)}


REFUSALS = {
    "diffusers layout": (lambda s: {"conv_in.weight": torch.zeros(1)}, "no 'model.diffusion_model"),
    "SDXL": (lambda s: {**s, "conditioner.embedders.0.x": torch.zeros(1)}, "SDXL checkpoint"),
    "SD2 context": (
        _replace_all("attn2.to_k.weight", lambda v: torch.zeros(v.shape[0], 1024)),
        "an SD2.x checkpoint: its UNet reads text of width 1024",
    ),
    "inpainting": (
        _replace_all("input_blocks.0.0.weight", lambda v: torch.zeros(v.shape[0], 9, 3, 3)),
        "an inpainting checkpoint",
    ),
    "no VAE": (_drop("first_stage_model."), r"no 'first_stage_model\.\*' \(VAE\)"),
    "a missing key": (
        _drop("model.diffusion_model.out.2.bias"),
        r"UNet weights do not match .*1 missing.*does not look like an SD1.5 checkpoint",
    ),
    "an unexpected key": (
        lambda s: {**s, "model.diffusion_model.input_blocks.1.1.extra.weight": torch.zeros(2)},
        r"UNet weights do not match .*1 unexpected.*down_blocks.0.attentions.0.extra.weight",
    ),
    "a tensor of no layer": (  # diffusers' converter drops it silently
        lambda s: {**s, "model.diffusion_model.extra.weight": torch.zeros(2)},
        r"1 UNet tensors fit no SD1.5 layer \(e.g. model.diffusion_model.extra.weight\)",
    ),
    "a wrong shape": (
        _replace_all("first_stage_model.quant_conv.weight", lambda v: torch.zeros(8, 8, 3, 3)),
        "VAE weights do not fit SD1.5's VAE",
    ),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_other_files_are_refused_with_the_reason(case, ldm_state, tmp_path):
    edit, message = REFUSALS[case]
    path = tmp_path / "other.safetensors"
    save_file(edit(ldm_state), str(path))
    with pytest.raises(ValueError, match=message) as error:
        DragPDPipeline.from_single_file(path, architecture=TINY)
    assert str(path) in str(error.value)


def test_missing_unknown_and_pickled_files_are_refused(tmp_path):
    with pytest.raises(ValueError, match=r"no checkpoint at .*nowhere\.safetensors"):
        DragPDPipeline.from_single_file(tmp_path / "nowhere.safetensors")
    (tmp_path / "model.onnx").write_bytes(b"x")
    with pytest.raises(ValueError, match=r"unknown checkpoint format '\.onnx'"):
        DragPDPipeline.from_single_file(tmp_path / "model.onnx")
    torch.save({"state_dict": {}, "callback": Sd15Architecture()}, tmp_path / "code.ckpt")
    with pytest.raises(ValueError, match=r"weights_only=True\): it pickles more than tensors"):
        DragPDPipeline.from_single_file(tmp_path / "code.ckpt")
