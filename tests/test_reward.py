import json

import pytest
import torch
from safetensors.torch import save_file

from dragpd import DragConfig, DragPoints, drag, invert
from dragpd.reward import ClipReward, load_open_clip
from dragpd.tiny import TINY_PRESET, synthetic_latent, tiny_open_clip, tiny_vae
from dragpd.vae import latent_decoder


@pytest.fixture(scope="module")
def clip():
    return tiny_open_clip(seed=0)


def image(seed: int, size=(40, 56)) -> torch.Tensor:
    return torch.rand(1, 3, *size, generator=torch.Generator().manual_seed(seed))


def test_gradient_ascent_raises_the_reward(clip):
    model, tokenizer = clip
    reward = ClipReward.from_open_clip(model, tokenizer, "a red circle")
    logits = torch.logit(image(0).clamp(0.05, 0.95)).requires_grad_(True)
    optimizer = torch.optim.Adam([logits], lr=0.05)
    start = reward(torch.sigmoid(logits)).item()
    for _ in range(30):
        loss = -reward(torch.sigmoid(logits)).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    end = reward(torch.sigmoid(logits)).item()
    assert end > start + 0.1, (start, end)
    assert all(p.grad is None for p in model.parameters())


def test_preprocessing_is_clips_and_batched(clip):
    model, tokenizer = clip
    reward = ClipReward.from_open_clip(model, tokenizer, "a blue square")
    assert reward.image_size == (32, 32)
    batch = torch.cat([image(1), image(2)])
    assert reward.preprocess(batch).shape == (2, 3, 32, 32)
    scores = reward(batch)
    assert scores.shape == (2,) and bool(((scores >= -1) & (scores <= 1)).all())
    assert torch.allclose(scores[:1], reward(image(1)), atol=1e-6)


def test_directional_reward_is_zero_for_an_unchanged_image(clip):
    model, tokenizer = clip
    reward = ClipReward.from_open_clip(model, tokenizer, "a blue circle", "a red circle")
    with pytest.raises(ValueError, match="needs a reference image"):
        reward(image(3))
    anchored = reward.with_reference(image(3))
    assert abs(anchored(image(3)).item()) < 1e-5  # float noise of two forwards
    changed = anchored(image(4)).item()
    assert changed != 0.0 and -1.0 <= changed <= 1.0
    # Far from the reference it is the cosine of the two changes.
    e_img = anchored.embed_images(image(4))[0]
    img_change = e_img - anchored.reference_embedding
    txt_change = anchored.text_embedding - anchored.source_embedding
    if img_change.norm() >= anchored.direction_threshold:
        expected = torch.nn.functional.cosine_similarity(img_change, txt_change, dim=0)
        assert changed == pytest.approx(float(expected), abs=1e-5)


def test_empty_text_is_refused(clip):
    with pytest.raises(ValueError, match="non-empty edit text"):
        ClipReward.from_open_clip(*clip, "  ")


# --- loading weights from a local file ------------------------------------------------

TINY_ARCH = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 8, "head_width": 16},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


@pytest.fixture(scope="module")
def registered(tmp_path_factory):
    import open_clip

    folder = tmp_path_factory.mktemp("clip_configs")
    wide = json.loads(json.dumps(TINY_ARCH))
    wide["vision_cfg"]["width"] = 64
    for name, cfg in (("dragpd-test-tiny", TINY_ARCH), ("dragpd-test-wide", wide)):
        (folder / f"{name}.json").write_text(json.dumps(cfg))
    open_clip.add_model_config(folder)
    model = open_clip.create_model("dragpd-test-tiny", pretrained=None)
    path = folder / "tiny.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return model, path


def test_weights_load_offline_from_safetensors(registered):
    model, path = registered
    loaded, tokenizer = load_open_clip(path, "dragpd-test-tiny")
    tokens = tokenizer(["a red circle"])
    with torch.no_grad():
        assert torch.equal(loaded.encode_text(tokens), model.eval().encode_text(tokens))


def test_loading_errors_name_the_file_and_the_fix(registered, tmp_path):
    model, path = registered
    with pytest.raises(ValueError, match=r"missing\.safetensors does not exist"):
        load_open_clip(tmp_path / "missing.safetensors", "dragpd-test-tiny")
    with pytest.raises(ValueError, match=r"tiny\.safetensors does not fit .*'dragpd-test-wide'"):
        load_open_clip(path, "dragpd-test-wide")
    with pytest.raises(ValueError, match="tokenizer from the Hugging Face hub"):
        load_open_clip(path, "ViT-B-16-SigLIP")
    with pytest.raises(ValueError, match="unknown open_clip architecture"):
        load_open_clip(path, "no-such-arch")
    openai_style = tmp_path / "openai.pt"
    torch.save(
        {**model.state_dict(), "input_resolution": 32, "context_length": 16, "vocab_size": 49408},
        openai_style,
    )
    with pytest.raises(ValueError, match="use the architecture dragpd-test-tiny-quickgelu"):
        load_open_clip(openai_style, "dragpd-test-tiny")


# --- in the drag loop -----------------------------------------------------------------


@pytest.fixture(scope="module")
def edit(unet):
    latent = synthetic_latent(seed=0)
    cond = torch.randn(1, 7, 32, generator=torch.Generator().manual_seed(0))
    inversion = invert(unet, latent, cond, num_inference_steps=20, strength=0.7)
    points = DragPoints([[38.5, 64.5]], [[84.5, 64.5]], (128, 128))
    return inversion, points, DragConfig.for_model("sd15", **TINY_PRESET, max_iterations=6)


def test_in_drag_weight_zero_is_the_baseline_and_a_weight_acts(unet, edit, clip):
    inversion, points, config = edit
    reward = ClipReward.from_open_clip(*clip, "a blue circle", "a red circle")
    decoder = latent_decoder(tiny_vae())
    base = drag(unet, inversion, points, config)
    off = drag(unet, inversion, points, config, reward=reward, decoder=decoder)
    on = drag(
        unet,
        inversion,
        points,
        config.replace(clip_weight=50.0, clip_every=2, clip_iterations=0),
        reward=reward,
        decoder=decoder,
    )
    assert torch.equal(base.latent, off.latent)
    assert [("clip_reward" in s.terms) for s in on.history] == [True, False] * 3
    assert on.history[0].terms["clip_reward"] == pytest.approx(0.0, abs=1e-6)  # unchanged
    assert not torch.equal(base.latent, on.latent)


def test_a_reward_built_inside_inference_mode_works_in_the_drag(unet, edit, clip):
    # ComfyUI builds everything inside torch.inference_mode(); the embeddings must still
    # be usable by the loop's autograd.
    inversion, points, config = edit
    decoder = latent_decoder(tiny_vae())  # the bridge builds its decoder outside, too
    with torch.inference_mode():
        reward = ClipReward.from_open_clip(*clip, "a blue circle", "a red circle")
        result = drag(
            unet,
            inversion,
            points,
            config.replace(clip_weight=5.0, max_iterations=1, clip_iterations=1),
            reward=reward,
            decoder=decoder,
        )
    assert result.iterations == 2 and "clip_reward" in result.history[1].terms


def test_the_text_edit_follows_the_drag_and_holds_what_moved(unet, edit, clip):
    inversion, points, config = edit
    reward = ClipReward.from_open_clip(*clip, "a blue circle", "a red circle")
    decoder = latent_decoder(tiny_vae())
    config = config.replace(clip_weight=50.0, clip_iterations=4)
    result = drag(unet, inversion, points, config, reward=reward, decoder=decoder)
    phases = [tuple(sorted(step.terms)) for step in result.history]
    drag_terms = ("background", "motion", "ppr")
    text_terms = ("background", "clip_reward", "hold", "ppr")
    assert phases == [drag_terms] * 6 + [text_terms] * 4 + [()]  # then the final positions
    assert result.iterations == 10 and result.stop_reason == "max_iterations"
    text = result.history[6:]
    assert all(torch.equal(step.handles, text[0].handles) for step in text)  # no tracking
    assert text[0].terms["hold"] == pytest.approx(0.0, abs=1e-6)
    rewards = [step.terms["clip_reward"] for step in text[:4]]
    assert rewards[-1] > rewards[0], rewards


def test_clip_weight_without_a_reward_is_refused(unet, edit):
    inversion, points, config = edit
    with pytest.raises(ValueError, match="needs a reward"):
        drag(unet, inversion, points, config.replace(clip_weight=1.0))
