"""Stable Diffusion 1.x single-file checkpoints → diffusers / transformers modules, offline.

A single-file checkpoint (``v1-5-pruned-emaonly.safetensors``; what ComfyUI and A1111
load) keeps CompVis' original LDM layout: the UNet under ``model.diffusion_model.``, the
VAE under ``first_stage_model.`` and the CLIP text encoder under
``cond_stage_model.transformer.``. Keys are mapped with diffusers' own converters
(``diffusers.loaders.single_file_utils``), and the modules are built from the
architectures shipped in :mod:`dragpd.unet_configs`: nothing is fetched from a hub.
Loading is strict: a checkpoint tensor no module takes, or a module weight the
checkpoint lacks, is an error.
"""

from __future__ import annotations

import hashlib
import logging
import pickle
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from .unet_configs import SD15_TEXT_ENCODER, SD15_UNET, SD15_VAE

__all__ = [
    "SD15",
    "Sd15Architecture",
    "Sd15Models",
    "check_sd15_checkpoint",
    "convert_text_encoder",
    "convert_unet",
    "convert_vae",
    "fingerprint",
    "load_sd15_checkpoint",
    "read_state_dict",
    "split_sd15_checkpoint",
]

logger = logging.getLogger(__name__)

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
TEXT_PREFIX = "cond_stage_model.transformer."
EMA_PREFIX = "model_ema."  # LDM's EMA copy of the UNet, names flattened: model_ema.diffusion_model…
TORCH_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin")
# Cross-attention context width → the family it betrays.
FAMILY_BY_CONTEXT = {768: "an SD1.x", 1024: "an SD2.x", 1280: "an SDXL refiner", 2048: "an SDXL"}
FAMILY_BY_IN_CHANNELS = {8: "an InstructPix2Pix", 9: "an inpainting"}
SUPPORTED = "DragPD's pipeline takes SD1.x ε-prediction checkpoints only"


@dataclass(frozen=True)
class Sd15Architecture:
    """Constructor keyword arguments of the three models of an SD1.x checkpoint.

    The defaults are SD1.5's. A narrower architecture with the same block types and
    ``layers_per_block`` has the same checkpoint layout (the tests use one).
    """

    # diffusers UNet2DConditionModel(**unet)
    unet: Mapping[str, Any] = field(default_factory=lambda: dict(SD15_UNET))
    # diffusers AutoencoderKL(**vae)
    vae: Mapping[str, Any] = field(default_factory=lambda: dict(SD15_VAE))
    # transformers CLIPTextModel(CLIPTextConfig(**text_encoder))
    text_encoder: Mapping[str, Any] = field(default_factory=lambda: dict(SD15_TEXT_ENCODER))


SD15 = Sd15Architecture()


@dataclass
class Sd15Models:
    """The models of one checkpoint, frozen, in eval mode, on one device and dtype.

    Attributes:
        unet: diffusers ``UNet2DConditionModel``.
        vae: diffusers ``AutoencoderKL`` (its ``scaling_factor`` from the architecture).
        text_encoder: transformers ``CLIPTextModel``.
        fingerprint: :func:`fingerprint` of the checkpoint's weights.
    """

    unet: nn.Module
    vae: nn.Module
    text_encoder: nn.Module
    fingerprint: str


def read_state_dict(path: str | Path) -> dict[str, Tensor]:
    """Every tensor of a local checkpoint file, on the CPU, unwrapped from ``"state_dict"``.

    ``.safetensors`` is read with safetensors; ``.ckpt`` / ``.pt`` / ``.pth`` / ``.bin``
    with ``torch.load(weights_only=True)``, which refuses files that pickle code.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(
            f"no checkpoint at {path}: pass the path of a local SD1.5 single-file "
            "checkpoint, e.g. v1-5-pruned-emaonly.safetensors."
        )
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state: Any = load_file(str(path), device="cpu")
    elif path.suffix in TORCH_SUFFIXES:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as error:
            raise ValueError(
                f"{path} cannot be read with torch.load(weights_only=True): it pickles more "
                f"than tensors. Convert it to .safetensors. ({error})"
            ) from error
    else:
        raise ValueError(
            f"{path}: unknown checkpoint format {path.suffix!r}; pass a .safetensors "
            f"file (or {', '.join(TORCH_SUFFIXES)})."
        )
    if isinstance(state, Mapping) and isinstance(state.get("state_dict"), Mapping):
        state = state["state_dict"]
    if not isinstance(state, Mapping):
        raise ValueError(f"{path} holds a {type(state).__name__}, not a dict of tensors.")
    return {k: v for k, v in state.items() if isinstance(v, Tensor)}


def _with_prefix(state: Mapping[str, Tensor], prefix: str) -> dict[str, Tensor]:
    return {k: v for k, v in state.items() if k.startswith(prefix)}


def _ema_unet(state: Mapping[str, Tensor], unet: Mapping[str, Tensor]) -> dict[str, Tensor] | None:
    """The UNet's EMA weights under the live weights' names, when the file has all of them."""
    flat = {key: EMA_PREFIX + key.removeprefix("model.").replace(".", "") for key in unet}
    if not all(name in state for name in flat.values()):
        return None
    return {key: state[name] for key, name in flat.items()}


def split_sd15_checkpoint(
    state: Mapping[str, Tensor],
) -> tuple[dict[str, Tensor], dict[str, Tensor], dict[str, Tensor]]:
    """Split an LDM checkpoint into its UNet, VAE and text-encoder tensors.

    Keys keep their prefixes (diffusers' converters expect them). When the file also
    holds LDM's EMA copy of the UNet (``v1-5-pruned.ckpt``), the EMA weights are taken,
    as ``*-emaonly`` files ship them. Tensors under no prefix (the noise schedule's
    ``alphas_cumprod``…) are left out.

    Returns:
        ``(unet, vae, text)`` dicts of LDM keys → tensors.
    """
    unet = _with_prefix(state, UNET_PREFIX)
    ema = _ema_unet(state, unet) if unet else None
    if ema is not None:
        logger.info("the checkpoint holds EMA weights of the UNet: using them")
        unet = ema
    return unet, _with_prefix(state, VAE_PREFIX), _with_prefix(state, TEXT_PREFIX)


def _context_dim(unet: Mapping[str, Tensor]) -> int | None:
    """Width of the text the UNet's cross-attention reads (768 for SD1.x)."""
    keys = sorted(k for k in unet if k.endswith("attn2.to_k.weight"))
    return int(unet[keys[0]].shape[1]) if keys else None


def check_sd15_checkpoint(
    state: Mapping[str, Tensor], architecture: Sd15Architecture = SD15, name: str = "the checkpoint"
) -> None:
    """Refuse, with a ``ValueError`` saying what the file is, anything but an SD1.x checkpoint.

    Checks the family by its marks (SDXL's ``conditioner.`` and ``label_emb``, the
    cross-attention context width, the UNet's input channels) and that the three models
    are there. v-prediction cannot be told from the weights: it is not checked.
    """
    unet_config = architecture.unet
    unet = _with_prefix(state, UNET_PREFIX)
    if not unet:
        looks = " (it has diffusers-format keys)" if "conv_in.weight" in state else ""
        raise ValueError(
            f"{name} has no '{UNET_PREFIX}*' weights{looks}: it does not look like an SD1.5 "
            "single-file checkpoint in the original LDM layout. Pass a file such as "
            "v1-5-pruned-emaonly.safetensors, or build DragPDPipeline(unet, vae, "
            "encode_prompt) from diffusers models yourself."
        )
    if (
        any(k.startswith("conditioner.") for k in state)
        or UNET_PREFIX + "label_emb.0.0.weight" in unet
    ):
        raise ValueError(f"{name} is an SDXL checkpoint; {SUPPORTED}.")
    context = _context_dim(unet)
    if context != unet_config["cross_attention_dim"]:
        family = FAMILY_BY_CONTEXT.get(context, "not an SD1.x")
        raise ValueError(
            f"{name} is {family} checkpoint: its UNet reads text of width {context}, SD1.5's "
            f"reads {unet_config['cross_attention_dim']}. {SUPPORTED}."
        )
    conv_in = unet.get(UNET_PREFIX + "input_blocks.0.0.weight")
    if conv_in is not None and conv_in.shape[1] != unet_config["in_channels"]:
        family = FAMILY_BY_IN_CHANNELS.get(conv_in.shape[1], "a modified")
        raise ValueError(
            f"{name} is {family} checkpoint: its UNet takes {conv_in.shape[1]} input channels, "
            f"not {unet_config['in_channels']}. {SUPPORTED} (no inpainting or instruct models)."
        )
    for prefix, what in ((VAE_PREFIX, "VAE"), (TEXT_PREFIX, "CLIP text encoder")):
        if not any(k.startswith(prefix) for k in state):
            raise ValueError(
                f"{name} has no '{prefix}*' ({what}) weights: it does not look like a full "
                "SD1.5 checkpoint. Pass one that bundles UNet, VAE and text encoder."
            )


def _unused(source: Mapping[str, Tensor], converted: Mapping[str, Tensor]) -> list[str]:
    """Keys of ``source`` no converted tensor came from (same tensor, or a view at its start)."""
    used = {t.data_ptr() for t in converted.values()}
    return sorted(k for k, t in source.items() if t.data_ptr() not in used)


def _no_leftovers(
    source: Mapping[str, Tensor], converted: Mapping[str, Tensor], part: str, name: str
) -> None:
    unused = _unused(source, converted)
    if unused:
        raise ValueError(
            f"{name}: {len(unused)} {part} tensors fit no SD1.5 layer (e.g. "
            f"{', '.join(unused[:3])}): it does not look like an SD1.5 checkpoint."
        )


def convert_unet(
    unet: Mapping[str, Tensor],
    config: Mapping[str, Any] = SD15_UNET,
    name: str = "the checkpoint",
) -> dict[str, Tensor]:
    """``model.diffusion_model.*`` LDM keys → ``UNet2DConditionModel`` keys (same tensors).

    ``name`` is the file the message of an error names.

    Raises:
        ValueError: a tensor maps to no layer of ``config``'s UNet.
    """
    from diffusers.loaders.single_file_utils import convert_ldm_unet_checkpoint

    converted = convert_ldm_unet_checkpoint(dict(unet), dict(config))
    _no_leftovers(unet, converted, "UNet", name)
    return converted


def convert_vae(
    vae: Mapping[str, Tensor],
    config: Mapping[str, Any] = SD15_VAE,
    name: str = "the checkpoint",
) -> dict[str, Tensor]:
    """``first_stage_model.*`` LDM keys → ``AutoencoderKL`` keys.

    The mid-block attention's 1×1 convolutions become linear weights (views, no copy).
    ``name`` is the file the message of an error names.

    Raises:
        ValueError: a tensor maps to no layer of ``config``'s VAE.
    """
    from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint

    converted = convert_ldm_vae_checkpoint(dict(vae), dict(config))
    _no_leftovers(vae, converted, "VAE", name)
    return converted


def convert_text_encoder(text: Mapping[str, Tensor], nested: bool = False) -> dict[str, Tensor]:
    """``cond_stage_model.transformer.*`` keys → ``CLIPTextModel`` keys.

    Files name the layers with or without ``text_model.``; ``nested`` says whether the
    installed transformers' ``CLIPTextModel`` wraps them in ``text_model`` (before 5.6).
    ``embeddings.position_ids`` is dropped: the model makes its own (and some merged
    files carry corrupted float ones).
    """
    from diffusers.loaders.single_file_utils import convert_ldm_clip_checkpoint

    flat = {
        k.removeprefix("text_model."): v
        for k, v in convert_ldm_clip_checkpoint(dict(text)).items()
        if not k.endswith("embeddings.position_ids")
    }
    return {f"text_model.{k}": v for k, v in flat.items()} if nested else flat


def fingerprint(state: Mapping[str, Tensor], samples: int = 64) -> str:
    """A cheap content hash: every tensor's name, shape and ``samples`` evenly spaced values.

    Any fine-tune or merge changes it; reading the values costs milliseconds, not a pass
    over gigabytes.
    """
    digest = hashlib.sha256()
    for key in sorted(state):
        flat = state[key].reshape(-1)
        values = flat[:: max(1, flat.numel() // samples)][:samples]
        digest.update(f"{key}{tuple(state[key].shape)}".encode())
        digest.update(values.float().numpy().tobytes())
    return digest.hexdigest()[:16]


def _load(
    model: nn.Module, state: Mapping[str, Tensor], name: str, part: str, assign: bool
) -> None:
    """``load_state_dict`` that names the file in every way it can fail."""
    try:
        missing, unexpected = model.load_state_dict(state, strict=False, assign=assign)
    except RuntimeError as error:  # shape mismatches
        raise ValueError(
            f"{name}: its {part} weights do not fit SD1.5's {part}: it does not look like an "
            f"SD1.5 checkpoint. ({error})"
        ) from error
    if missing or unexpected:
        raise ValueError(
            f"{name}: its {part} weights do not match SD1.5's {part} ({len(missing)} missing, "
            f"e.g. {missing[:3]}; {len(unexpected)} unexpected, e.g. {unexpected[:3]}): it "
            "does not look like an SD1.5 checkpoint."
        )


def _cast(state: Mapping[str, Tensor], dtype: torch.dtype) -> dict[str, Tensor]:
    return {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}


def _on_meta(factory: Callable[[], nn.Module]) -> nn.Module:
    """Build a module without allocating or initialising its weights (they are loaded next)."""
    with torch.device("meta"):
        return factory()


def load_sd15_checkpoint(
    path: str | Path,
    architecture: Sd15Architecture = SD15,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> Sd15Models:
    """Build UNet, VAE and text encoder from one local SD1.x single-file checkpoint.

    Args:
        path: ``.safetensors`` (or ``.ckpt`` / ``.pt``, see :func:`read_state_dict`).
        architecture: what to build; SD1.5's by default.
        device: where the models go; the CPU when ``None``.
        dtype: the models' dtype.

    Raises:
        ValueError: the file is missing, unreadable, of another family (SD2.x, SDXL,
            inpainting) or its weights do not fit the architecture; the message says which.
    """
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    name = str(path)
    state = read_state_dict(path)
    check_sd15_checkpoint(state, architecture, name)
    unet_ldm, vae_ldm, text_ldm = split_sd15_checkpoint(state)
    del state

    key = fingerprint({**unet_ldm, **vae_ldm, **text_ldm})

    # diffusers models are cast through their state dicts: ModelMixin.to(dtype) warns.
    unet = _on_meta(lambda: UNet2DConditionModel(**architecture.unet))
    unet_sd = convert_unet(unet_ldm, architecture.unet, name)
    _load(unet, _cast(unet_sd, dtype), name, "UNet", assign=True)
    vae = _on_meta(lambda: AutoencoderKL(**architecture.vae))
    vae_sd = convert_vae(vae_ldm, architecture.vae, name)
    _load(vae, _cast(vae_sd, dtype), name, "VAE", assign=True)
    # Built for real: CLIPTextModel keeps a non-persistent position_ids buffer.
    text_encoder = CLIPTextModel(CLIPTextConfig(**architecture.text_encoder))
    text = convert_text_encoder(text_ldm, nested=hasattr(text_encoder, "text_model"))
    _load(text_encoder, text, name, "text encoder", assign=False)
    text_encoder.to(dtype=dtype)

    models = [m.to(device=device).eval().requires_grad_(False) for m in (unet, vae, text_encoder)]
    logger.info(
        "loaded %s: UNet %.0f M, VAE %.0f M, text encoder %.0f M parameters, %s on %s, "
        "fingerprint %s",
        Path(path).name,
        *(sum(p.numel() for p in m.parameters()) / 1e6 for m in models),
        dtype,
        next(models[0].parameters()).device,
        key,
    )
    return Sd15Models(*models, fingerprint=key)
