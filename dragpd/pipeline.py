"""The whole drag edit for library users: LoRA → inversion → drag → denoise → decode."""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor, nn

from .checkpoint import SD15, Sd15Architecture, load_sd15_checkpoint
from .config import TEXT_EDIT_CLIP_WEIGHT, DragConfig
from .drag import DragCallback, DragResult, drag
from .inversion import denoise, invert
from .lora import export_comfy_lora, import_comfy_lora, lora_cache_key, remove_lora, train_lora
from .points import DragPoints
from .prompt import prompt_encoder
from .reward import ClipReward
from .vae import decode_latents, encode_images, latent_decoder

__all__ = ["DragPDPipeline", "EditResult", "image_to_tensor", "tensor_to_image"]

logger = logging.getLogger(__name__)

LORA_CACHE_SIZE = 4


def image_to_tensor(image: Image.Image) -> Tensor:
    """PIL image → ``(1, 3, H, W)`` float in [0, 1]."""
    array = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(array).permute(2, 0, 1)[None].clone()


def tensor_to_image(images: Tensor) -> Image.Image:
    """``(1, 3, H, W)`` in [0, 1] → PIL image."""
    array = (images[0].clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255.0).round()
    return Image.fromarray(array.astype(np.uint8))


@dataclass
class EditResult:
    """A finished edit.

    Attributes:
        image: the edited image (PIL, the size of the image that was edited).
        handles: ``(N, 2)`` float64 (x, y) px where the handles ended.
        history: per stage, in order — "lora", "inversion", "drag", "denoise", "decode" —
            a dict with its "seconds" and what it measured ("losses" of the LoRA,
            "steps", "stop_reason" and "iterations" of the drag).
        drag: the raw :class:`~dragpd.drag.DragResult`.
    """

    image: Image.Image
    handles: Tensor
    history: dict[str, dict] = field(default_factory=dict)
    drag: DragResult | None = None

    @property
    def seconds(self) -> float:
        return sum(stage["seconds"] for stage in self.history.values())


class DragPDPipeline:
    """Drag edits with one set of diffusers components.

    Args:
        unet: ``UNet2DConditionModel`` (ε-prediction).
        vae: ``AutoencoderKL``; its ``scaling_factor`` sets the latent convention.
        encode_prompt: text → ``(1, L, D)`` hidden states for the UNet.
        clip: optional ``(open_clip model, tokenizer)`` for the CLIP reward.
        model: the :data:`~dragpd.config.MODEL_PRESETS` name for default configs.
    """

    def __init__(
        self,
        unet: nn.Module,
        vae: nn.Module,
        encode_prompt: Callable[[str], Tensor],
        clip: tuple[nn.Module, Callable] | None = None,
        model: str = "sd15",
        model_key: str = "",
    ) -> None:
        self.unet = unet
        self.vae = vae
        self.encode_prompt = encode_prompt
        self.clip = clip
        self.model = model
        self.model_key = model_key or model
        self.vae_factor = 2 ** (len(vae.config.block_out_channels) - 1)
        self._lora_cache: OrderedDict[str, dict[str, Tensor]] = OrderedDict()

    @classmethod
    def from_toy(cls) -> DragPDPipeline:
        """The built-in toy world (64×64 scenes of shapes), trained weights shipped."""
        from .toy import load_toy_models

        toy = load_toy_models()
        return cls(
            toy.unet,
            toy.vae,
            toy.encode_prompt,
            (toy.clip, toy.tokenizer),
            "toy",
            model_key="dragpd-toy",
        )

    @classmethod
    def from_single_file(
        cls,
        path: str | Path,
        *,
        clip: tuple[nn.Module, Callable] | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
        architecture: Sd15Architecture = SD15,
    ) -> DragPDPipeline:
        """SD1.5 from one local single-file checkpoint, offline.

        The checkpoint must be **ε-prediction** (SD1.x and its fine-tunes and merges):
        v-prediction cannot be told from the weights, and such a model would give wrong
        inversions and edits. SD2.x, SDXL and inpainting checkpoints are refused.

        Args:
            path: ``.safetensors`` in the original LDM layout, e.g.
                ``v1-5-pruned-emaonly.safetensors``; ``.ckpt`` / ``.pt`` files are read
                with ``torch.load(weights_only=True)``.
            clip: optional ``(open_clip model, tokenizer)`` for the CLIP reward, e.g.
                from :func:`~dragpd.reward.load_open_clip`.
            device: where the models run; the CPU when ``None``.
            dtype: the models' dtype; float16 halves the memory on a GPU.
            architecture: the models to build, SD1.5's by default; see
                :class:`~dragpd.checkpoint.Sd15Architecture`.

        Raises:
            ValueError: the file is missing, unreadable or not an SD1.x checkpoint; the
                message says which and what to pass instead.
        """
        from open_clip.tokenizer import SimpleTokenizer

        models = load_sd15_checkpoint(path, architecture, device=device, dtype=dtype)
        return cls(
            models.unet,
            models.vae,
            prompt_encoder(models.text_encoder, SimpleTokenizer()),
            clip,
            "sd15",
            model_key=f"sd15:{models.fingerprint}",
        )

    def default_config(self, **overrides) -> DragConfig:
        return DragConfig.for_model(self.model, **overrides)

    def config_for(self, config: DragConfig | None, edit_text: str | None) -> DragConfig:
        """The config an edit runs with: the model preset when ``None``, with the CLIP
        reward on at ``TEXT_EDIT_CLIP_WEIGHT`` when there is an edit text."""
        if config is None:
            return self.default_config(clip_weight=TEXT_EDIT_CLIP_WEIGHT if edit_text else 0.0)
        if edit_text and config.clip_weight == 0:
            logger.warning(
                "edit_text %r is not used: config.clip_weight is 0 (try %g).",
                edit_text,
                TEXT_EDIT_CLIP_WEIGHT,
            )
        return config

    def prepare(self, image: Image.Image, points: DragPoints) -> tuple[Image.Image, DragPoints]:
        """The image :meth:`edit` works on — centre-cropped to multiples of the VAE factor —
        and the points shifted to match (what ``EditResult.handles`` refer to)."""
        width, height = image.size
        if points.image_size != (height, width):
            raise ValueError(
                f"the points refer to a {points.image_size[0]}×{points.image_size[1]} image "
                f"but the image is {height}×{width}; pick the points on this image."
            )
        f = self.vae_factor
        new_h, new_w = height // f * f, width // f * f
        if (new_h, new_w) == (height, width):
            return image, points
        if new_h == 0 or new_w == 0:
            raise ValueError(f"the image is smaller than {f}×{f} pixels.")
        top, left = (height - new_h) // 2, (width - new_w) // 2
        cropped = points.cropped(top, left, new_h, new_w)
        return image.crop((left, top, left + new_w, top + new_h)), cropped

    def _fit_lora(self, latent: Tensor, prompt: str, config: DragConfig, seed: int) -> dict:
        key = lora_cache_key(latent, prompt, self.model_key, config, seed)
        if key in self._lora_cache:
            self._lora_cache.move_to_end(key)
            import_comfy_lora(self.unet, self._lora_cache[key])
            return {"cached": True, "losses": []}
        result = train_lora(self.unet, latent, self.encode_prompt(prompt), config, seed=seed)
        self._lora_cache[key] = export_comfy_lora(self.unet)
        while len(self._lora_cache) > LORA_CACHE_SIZE:
            self._lora_cache.popitem(last=False)
        return {"cached": False, "losses": list(result.losses)}

    def edit(
        self,
        image: Image.Image,
        points: DragPoints,
        prompt: str,
        edit_text: str | None = None,
        config: DragConfig | None = None,
        source_text: str | None = None,
        seed: int = 0,
        callback: DragCallback | None = None,
    ) -> EditResult:
        """Drag the content at each handle of ``image`` to its target.

        Args:
            image: PIL image; centre-cropped to a multiple of the VAE factor if needed.
            points: pairs in ``image``'s pixels (``points.image_size == (H, W)``).
            prompt: text describing the image (the LoRA's and the UNet's condition).
            edit_text: what the result should look like, for the CLIP reward: after the
                drag, ``config.clip_iterations`` steps of text edit at
                ``config.clip_weight``.
            config: :class:`DragConfig`; this pipeline's model preset when ``None``, with
                ``clip_weight = TEXT_EDIT_CLIP_WEIGHT`` when there is an ``edit_text``.
            source_text: with ``edit_text``, makes the CLIP reward directional
                (the change from ``source_text`` to ``edit_text``).
            seed: seeds the LoRA's noise.
            callback: passed to :func:`~dragpd.drag.drag`.
        """
        config = self.config_for(config, edit_text)
        image, points = self.prepare(image, points)
        history: dict[str, dict] = {}
        clock = time.perf_counter()

        def lap(stage: str, **info) -> None:
            nonlocal clock
            now = time.perf_counter()
            history[stage] = {"seconds": now - clock, **info}
            clock = now

        latent = encode_images(self.vae, image_to_tensor(image))
        conditioning = self.encode_prompt(prompt)
        try:
            info = self._fit_lora(latent, prompt, config, seed) if config.lora_steps else {}
            lap("lora", **info)
            inversion = invert(
                self.unet,
                latent,
                conditioning,
                config.num_inference_steps,
                config.inversion_strength,
                model_key=self.model_key,
            )
            lap("inversion")
            reward = decoder = None
            if config.clip_weight > 0:
                if self.clip is None or not edit_text:
                    raise ValueError("clip_weight > 0 needs edit_text and a CLIP model.")
                reward = ClipReward.from_open_clip(*self.clip, edit_text, source_text)
                decoder = latent_decoder(self.vae)
            result = drag(
                self.unet,
                inversion,
                points,
                config,
                callback=callback,
                reward=reward,
                decoder=decoder,
            )
            lap(
                "drag",
                steps=result.history,
                stop_reason=result.stop_reason,
                iterations=result.iterations,
            )
            start = config.mutual_attention_start if config.mutual_attention else None
            edited = denoise(self.unet, result.latent, inversion, start)
            lap("denoise")
        finally:
            remove_lora(self.unet)
        edited_image = tensor_to_image(decode_latents(self.vae, edited))
        lap("decode")
        return EditResult(edited_image, result.handles, history, result)
