"""The only module of the pack that imports ComfyUI.

Inside ComfyUI it turns a MODEL into a diffusers ``UNet2DConditionModel`` carrying every
weight patch (checkpoint + LoRAs), built outside inference mode, and hands back results
in ComfyUI's conventions. Without ComfyUI (plain pytest, CI) it falls back to plain
torch: a MODEL is then a :class:`PlainModel` around a diffusers UNet and a VAE is a
diffusers ``AutoencoderKL``, so every node function stays unit-testable.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn

logger = logging.getLogger("dragpd.nodes")

try:  # ComfyUI present
    import comfy.lora
    import comfy.model_management
    import comfy.model_patcher
    import comfy.sd
    import comfy.utils
    import folder_paths
    from comfy_execution.graph import ExecutionBlocker

    HAVE_COMFY = True
except ImportError:  # plain torch fallback
    HAVE_COMFY = False
    ExecutionBlocker = None

SD15_SCALE = 0.18215
CLIP_FOLDER = "dragpd_clip"


# --- MODEL in the fallback ----------------------------------------------------------------


@dataclass
class PlainModel:
    """A MODEL without ComfyUI: a diffusers UNet, optional LoRA state, a latent scale."""

    unet: nn.Module
    lora: dict[str, Tensor] | None = None
    scaling_factor: float = SD15_SCALE
    key: str = field(default_factory=lambda: f"plain-{id(object())}")

    def with_lora(self, state: dict[str, Tensor]) -> PlainModel:
        digest = hashlib.sha256(b"".join(v.float().numpy().tobytes() for v in state.values()))
        return PlainModel(
            self.unet, state, self.scaling_factor, f"{self.key}+lora-{digest.hexdigest()[:12]}"
        )


# --- devices, progress, interruption -------------------------------------------------------


def torch_device() -> torch.device:
    if HAVE_COMFY:
        return comfy.model_management.get_torch_device()
    return torch.device("cpu")


def autocast_dtype(model) -> str | None:
    """The drag loop's autocast dtype: the one ComfyUI computes this MODEL in, on a GPU.

    The converted UNet keeps float32 weights (the LoRA and the latent train in float32);
    autocast runs its matmuls in ComfyUI's half precision, as DragDiffusion does on CUDA.
    None on the CPU, in the fallback, and when ComfyUI computes in float32.
    """
    if not HAVE_COMFY or torch_device().type == "cpu":
        return None
    inner = model.model
    dtype = getattr(inner, "manual_cast_dtype", None) or inner.get_dtype()
    return {torch.float16: "float16", torch.bfloat16: "bfloat16"}.get(dtype)


def storage_device() -> torch.device:
    """Where tensors rest between nodes (no VRAM held)."""
    if HAVE_COMFY:
        return comfy.model_management.intermediate_device()
    return torch.device("cpu")


def check_interrupted() -> None:
    """Raise ComfyUI's interrupt exception if the user pressed Cancel."""
    if HAVE_COMFY:
        comfy.model_management.throw_exception_if_processing_interrupted()


class Progress:
    """ComfyUI's progress bar (with an optional preview image), or nothing."""

    def __init__(self, total: int) -> None:
        self.total = max(1, total)
        self.bar = comfy.utils.ProgressBar(self.total) if HAVE_COMFY else None
        self.previews = 0

    def update(self, value: int, preview=None) -> None:
        self.previews += preview is not None
        if self.bar is not None:
            payload = None if preview is None else ("JPEG", preview, 512)
            self.bar.update_absolute(value, self.total, payload)
        check_interrupted()


def preview_images(image: Tensor) -> list[dict]:
    """Save IMAGE ``(B, H, W, 3)`` to ComfyUI's temp folder for the node's UI; [] without it."""
    if not HAVE_COMFY:
        return []
    import numpy as np
    from PIL import Image

    folder = folder_paths.get_temp_directory()
    full, name, counter, subfolder, _ = folder_paths.get_save_image_path(
        "dragpd_picker", folder, image.shape[2], image.shape[1]
    )
    results = []
    for i, frame in enumerate(image):
        array = (frame.clamp(0, 1).cpu().numpy() * 255).round().astype(np.uint8)
        filename = f"{name}_{counter + i:05}_.png"
        Image.fromarray(array).save(Path(full) / filename, compress_level=1)
        results.append({"filename": filename, "subfolder": subfolder, "type": "temp"})
    return results


def uploaded_image_path(name: str) -> Path:
    """The file of an image uploaded into ComfyUI's input folder (a path without ComfyUI)."""
    if not HAVE_COMFY:
        path = Path(name)
        folder = path.parent
    else:
        folder = Path(folder_paths.get_input_directory()).resolve()
        path = (folder / name).resolve()
        if not path.is_relative_to(folder):
            raise ValueError(f"the uploaded image {name!r} is outside ComfyUI's input folder.")
    if not path.is_file():
        raise ValueError(
            f"the uploaded image {name!r} is not in {folder}: upload it again with the Point "
            "Picker's Upload button, or connect an IMAGE."
        )
    return path


def load_uploaded_image(name: str) -> Tensor:
    """An uploaded image as IMAGE ``(1, H, W, 3)`` float in [0, 1], EXIF rotation applied."""
    import numpy as np
    from PIL import Image, ImageOps

    with Image.open(uploaded_image_path(name)) as image:
        array = np.asarray(ImageOps.exif_transpose(image).convert("RGB"), dtype=np.float32)
    return torch.from_numpy(array / 255.0)[None]


def uploaded_image_hash(name: str) -> str:
    """Content hash of an uploaded image, so a re-upload under the same name reruns the node."""
    try:
        return hashlib.sha256(uploaded_image_path(name).read_bytes()).hexdigest()
    except ValueError:
        return name


def blocker(message: str):
    """An ExecutionBlocker that stops the downstream graph with ``message`` (or None)."""
    return ExecutionBlocker(message) if HAVE_COMFY else None


# --- MODEL → diffusers UNet ---------------------------------------------------------------


class _Holder(nn.Module):
    """ModelPatcher sets ``.device`` on the module it manages; diffusers' is read-only."""

    def __init__(self, unet: nn.Module) -> None:
        super().__init__()
        self.unet = unet


_cache: dict[str, object] = {}  # one converted UNet at a time: {"key": ..., "unet": ...}


def model_key(model) -> str:
    """The MODEL's weight identity: base model object + its patch set."""
    if isinstance(model, PlainModel):
        return model.key
    if HAVE_COMFY:
        return f"{id(model.model)}:{model.patches_uuid if model.patches else 'base'}"
    raise ValueError(f"expected a MODEL, got {type(model).__name__}.")


def _check_supported(model) -> None:
    import comfy.model_base
    import comfy.model_sampling
    import comfy.supported_models

    config = model.model.model_config
    if type(config) is not comfy.supported_models.SD15:
        raise ValueError(
            f"DragPD supports SD1.x checkpoints for now; this MODEL is {type(config).__name__}. "
            "Load an SD1.5-family checkpoint."
        )
    if config.unet_config.get("in_channels", 4) != 4:
        raise ValueError(
            "inpainting models (9 input channels) are not supported; load a "
            "regular SD1.5 checkpoint."
        )
    sampling = model.get_model_object("model_sampling")
    if isinstance(sampling, comfy.model_sampling.V_PREDICTION):
        raise ValueError(
            "v-prediction is not supported yet; remove the ModelSamplingDiscrete "
            "node or use an epsilon-prediction SD1.5 checkpoint."
        )


def _warn_non_weight_patches(model) -> None:
    names = sorted(model.object_patches)
    options = model.model_options or {}
    names += [
        f"transformer_options.patches.{k}"
        for k in options.get("transformer_options", {}).get("patches", {})
    ]
    names += [
        f"transformer_options.patches_replace.{k}"
        for k in options.get("transformer_options", {}).get("patches_replace", {})
    ]
    names += [k for k in options if k != "transformer_options"]
    names += [f"wrapper {k}" for k, v in getattr(model, "wrappers", {}).items() if v]
    if names:
        logger.warning(
            "DragPD: these MODEL patches do not apply to the drag (they still apply "
            "to later samplers): %s",
            ", ".join(names),
        )


def _convert(model) -> nn.Module:
    """Bake the MODEL's weight patches into a fresh float32 diffusers UNet (no mutation)."""
    from diffusers import UNet2DConditionModel

    from dragpd.unet_configs import SD15_UNET

    _check_supported(model)
    _warn_non_weight_patches(model)
    prefix = "diffusion_model."
    with torch.inference_mode(False):
        state = {}
        for key, value in model.get_key_patches(prefix).items():
            weight, convert = value[0]
            weight = convert(weight.to("cpu", torch.float32, copy=True), inplace=True)
            if len(value) > 1:
                weight = comfy.lora.calculate_weight(value[1:], weight, key)
            state[key[len(prefix) :]] = weight
        mapping = comfy.utils.unet_to_diffusers(model.model.model_config.unet_config)
        diffusers_state = {d: state[c] for d, c in mapping.items() if c in state}
        unet = UNet2DConditionModel(**SD15_UNET)
        unet.load_state_dict(diffusers_state, strict=True)
    return unet.eval()


def unet_for(model) -> nn.Module:
    """The diffusers UNet for a MODEL, on the compute device, cached (one at a time)."""
    key = model_key(model)
    if _cache.get("key") == key:
        return _cache["unet"]
    _cache.clear()
    if isinstance(model, PlainModel):
        with torch.inference_mode(False):
            unet = copy.deepcopy(model.unet)  # never touch the caller's module
            if model.lora is not None:
                from dragpd.lora import fuse_comfy_lora

                fuse_comfy_lora(unet, model.lora)  # baked in, as ComfyUI's patches are
    else:
        unet = _convert(model)
        patcher = comfy.model_patcher.ModelPatcher(
            _Holder(unet), torch_device(), comfy.model_management.unet_offload_device()
        )
        # the backward pass roughly doubles activations: ask for headroom
        comfy.model_management.load_models_gpu(
            [patcher], memory_required=2 * 1024**3, force_full_load=True
        )
        _cache["patcher"] = patcher
    _cache.update(key=key, unet=unet)
    return unet


def release() -> None:
    """Forget the converted UNet (frees its memory)."""
    _cache.clear()


# --- latents, conditioning ----------------------------------------------------------------


def scaling(model) -> float:
    if isinstance(model, PlainModel):
        return model.scaling_factor
    return float(model.model.latent_format.scale_factor)


def latent_in(model, samples: Tensor) -> Tensor:
    """ComfyUI's unscaled LATENT → the UNet's scaled convention, as a normal tensor."""
    if samples.shape[0] != 1:
        raise ValueError(
            f"DragPD edits one image at a time; this LATENT holds {samples.shape[0]}. "
            "Split the batch first (e.g. with ComfyUI's 'Latent From Batch')."
        )
    with torch.inference_mode(False):
        return samples.detach().clone().float() * scaling(model)


def latent_out(model, latent: Tensor) -> dict:
    return {"samples": (latent.detach().float() / scaling(model)).to(storage_device())}


def conditioning_tensor(conditioning) -> Tensor:
    """CONDITIONING (``[[tensor, dict], ...]``) → ``(1, L, D)``, as a normal tensor."""
    if not conditioning:
        raise ValueError("the CONDITIONING is empty; connect a CLIP Text Encode.")
    if len(conditioning) > 1:
        logger.warning("DragPD uses the first of %d conditionings.", len(conditioning))
    with torch.inference_mode(False):
        tensor = conditioning[0][0].detach().clone().float()
    if tensor.ndim != 3 or tensor.shape[0] != 1:
        raise ValueError(f"expected conditioning of shape (1, L, D); got {tuple(tensor.shape)}.")
    return tensor


# --- LoRA out ------------------------------------------------------------------------------


def model_with_lora(model, state: dict[str, Tensor]):
    """A clone of MODEL with the LoRA applied as ordinary patches (the input is untouched)."""
    if isinstance(model, PlainModel):
        return model.with_lora(state)
    patched, _ = comfy.sd.load_lora_for_models(model, None, state, 1.0, 0)
    return patched


def sanitise_name(name: str) -> str:
    """A file name safe inside the loras folder: no folders, no traversal, .safetensors."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(name.strip()).name).strip("._")
    if not stem:
        raise ValueError(f"{name!r} is not a usable file name; use letters, digits, - and _.")
    return stem if stem.endswith(".safetensors") else f"{stem}.safetensors"


def loras_folder() -> Path:
    if HAVE_COMFY:
        return Path(folder_paths.get_folder_paths("loras")[0])
    return Path("loras")


def save_lora(state: dict[str, Tensor], name: str, folder: Path | None = None) -> Path:
    from safetensors.torch import save_file

    folder = Path(folder) if folder is not None else loras_folder()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / sanitise_name(name)
    save_file(
        {k: v.contiguous() for k, v in state.items()},
        str(path),
        metadata={"dragpd": "per-image LoRA"},
    )
    return path


# --- CLIP weights ---------------------------------------------------------------------------


def register_clip_folder() -> None:
    if not HAVE_COMFY:
        return
    folder = str(Path(folder_paths.models_dir) / CLIP_FOLDER)
    if CLIP_FOLDER in folder_paths.folder_names_and_paths:
        paths, _ = folder_paths.folder_names_and_paths[CLIP_FOLDER]
        if folder not in paths:
            paths.append(folder)
    else:
        folder_paths.folder_names_and_paths[CLIP_FOLDER] = (
            [folder],
            folder_paths.supported_pt_extensions,
        )


def clip_files() -> list[str]:
    if HAVE_COMFY:
        return folder_paths.get_filename_list(CLIP_FOLDER)
    return []


def clip_path(name: str) -> Path:
    if HAVE_COMFY:
        path = folder_paths.get_full_path(CLIP_FOLDER, name)
        folders = folder_paths.get_folder_paths(CLIP_FOLDER)
    else:
        path, folders = (name if Path(name).is_file() else None), ["(plain torch: a path)"]
    if path is None:
        raise ValueError(
            f"no open_clip weights {name!r} in {', '.join(folders)}: put an open_clip "
            "checkpoint there (e.g. ViT-B-32 open_clip_pytorch_model.bin or .safetensors) and "
            "pick it in the CLIP Reward node."
        )
    return Path(path)


_clip_cache: dict[tuple, tuple] = {}


def load_clip(name: str, architecture: str):
    from dragpd.reward import load_open_clip

    key = (name, architecture)
    if key not in _clip_cache:
        _clip_cache.clear()
        with torch.inference_mode(False):
            _clip_cache[key] = load_open_clip(clip_path(name), architecture, torch_device())
    return _clip_cache[key]


# --- VAE -------------------------------------------------------------------------------------


def vae_decoder(vae, model) -> Callable[[Tensor], Tensor]:
    """A differentiable scaled-latent → image [0, 1] decoder, the bridge's own copy."""
    from dragpd.vae import latent_decoder

    if not HAVE_COMFY or not hasattr(vae, "first_stage_model"):
        return latent_decoder(vae)
    with torch.inference_mode(False):
        state = {k: v.detach().clone().float() for k, v in vae.get_sd().items()}
        own = comfy.sd.VAE(sd=state).first_stage_model.float().to(torch_device()).eval()
        own.requires_grad_(False)
    scale = scaling(model)

    def decode(latent: Tensor) -> Tensor:
        return ((own.decode(latent / scale) + 1.0) / 2.0).clamp(0.0, 1.0)

    return decode


def decode_images(vae, samples: Tensor) -> Tensor:
    """Unscaled LATENT samples → IMAGE ``(B, H, W, 3)`` in [0, 1]."""
    if HAVE_COMFY and hasattr(vae, "first_stage_model"):
        return vae.decode(samples)
    from dragpd.vae import decode_latents

    scale = float(getattr(vae.config, "scaling_factor", SD15_SCALE))
    return decode_latents(vae, samples.float() * scale).permute(0, 2, 3, 1).cpu()
