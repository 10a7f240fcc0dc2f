"""CLIP reward for text-conditioned drags: a differentiable image–text score on open_clip.

R(x) = cos(CLIP_img(x), CLIP_txt(e)) for an edit text e. With a source text p, the
directional variant (StyleGAN-NADA style) scores the *change* of the image embedding from
a reference image against the change of the text embedding from p to e:
cos(CLIP_img(x) − CLIP_img(x_ref), CLIP_txt(e) − CLIP_txt(p)). The reference is the
decode of the inverted latent's own x̂₀, set once per edit (not the photo: its
sharpness would swamp the direction).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ._torch import frozen

__all__ = ["ClipReward", "load_open_clip"]

logger = logging.getLogger(__name__)

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)


def _normalise(x: Tensor) -> Tensor:
    return x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)


@dataclass(frozen=True, eq=False)
class ClipReward:
    """A differentiable CLIP score of images against an edit text.

    Build it with :meth:`from_open_clip`; call it on ``(B, 3, H, W)`` images in [0, 1]
    to get ``(B,)`` rewards (higher is better). For the directional variant, give it a
    reference image with :meth:`with_reference` first.

    Attributes:
        model: the open_clip model (its weights are not changed; gradients flow through).
        text_embedding: ``(D,)`` normalised embedding of the edit text.
        source_embedding: ``(D,)`` normalised embedding of the source text, or ``None``.
        reference_embedding: ``(D,)`` normalised embedding of the reference image, or ``None``.
        image_size: ``(h, w)`` CLIP's input size.
        mean, std: CLIP's per-channel normalisation.
        direction_threshold: below this image-embedding change the directional reward
            blends linearly into the plain one (its direction is undefined at 0).
    """

    model: nn.Module
    text_embedding: Tensor
    source_embedding: Tensor | None = None
    reference_embedding: Tensor | None = None
    image_size: tuple[int, int] = (224, 224)
    mean: tuple[float, ...] = OPENAI_MEAN
    std: tuple[float, ...] = OPENAI_STD
    direction_threshold: float = 0.02

    @classmethod
    def from_open_clip(
        cls,
        model: nn.Module,
        tokenizer: Callable[[Sequence[str]], Tensor],
        text: str,
        source_text: str | None = None,
    ) -> ClipReward:
        """Encode the edit (and source) text once and read CLIP's preprocessing.

        Args:
            model: an ``open_clip`` model (``encode_image`` / ``encode_text``).
            tokenizer: its tokenizer: a list of strings → ``(B, L)`` token ids.
            text: the edit text e, e.g. "a photo of a smiling man".
            source_text: the text p describing the photo as it is; enables the
                directional variant.
        """
        if not text or not text.strip():
            raise ValueError("the CLIP reward needs a non-empty edit text.")
        texts = [text] if source_text is None else [text, source_text]
        device = next(model.parameters()).device
        # Normal tensors even when built inside inference mode (ComfyUI's nodes): the drag
        # loop differentiates through products with them.
        with torch.inference_mode(False), torch.no_grad():
            embeddings = _normalise(model.encode_text(tokenizer(texts).to(device)).float())
        size = getattr(getattr(model, "visual", None), "image_size", 224)
        size = (size, size) if isinstance(size, int) else tuple(size)
        cfg = getattr(getattr(model, "visual", None), "preprocess_cfg", None) or {}
        return cls(
            model=model,
            text_embedding=embeddings[0],
            source_embedding=None if source_text is None else embeddings[1],
            image_size=size,
            mean=tuple(cfg.get("mean", OPENAI_MEAN)),
            std=tuple(cfg.get("std", OPENAI_STD)),
        )

    @property
    def directional(self) -> bool:
        return self.source_embedding is not None

    def preprocess(self, images: Tensor) -> Tensor:
        """Differentiable CLIP preprocessing: resize the short side, centre-crop, normalise.

        Args:
            images: ``(B, 3, H, W)`` in [0, 1].
        Returns:
            ``(B, 3, h, w)`` at CLIP's input size.
        """
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be (B, 3, H, W); got {tuple(images.shape)}.")
        th, tw = self.image_size
        h, w = images.shape[-2:]
        scale = max(th / h, tw / w)
        size = (max(th, round(h * scale)), max(tw, round(w * scale)))
        if size != (h, w):
            images = F.interpolate(
                images, size=size, mode="bicubic", align_corners=False, antialias=size[0] < h
            )
        top, left = (size[0] - th) // 2, (size[1] - tw) // 2
        images = images[..., top : top + th, left : left + tw]
        mean = images.new_tensor(self.mean).view(1, 3, 1, 1)
        std = images.new_tensor(self.std).view(1, 3, 1, 1)
        return (images - mean) / std

    def embed_images(self, images: Tensor) -> Tensor:
        """``(B, D)`` normalised CLIP embeddings of ``(B, 3, H, W)`` images in [0, 1]."""
        dtype = next(self.model.parameters()).dtype
        with frozen(self.model):
            embedding = self.model.encode_image(self.preprocess(images).to(dtype))
        return _normalise(embedding.float())

    def with_reference(self, images: Tensor) -> ClipReward:
        """A copy whose directional reward measures change from ``images`` ``(1, 3, H, W)``."""
        with torch.inference_mode(False), torch.no_grad():
            reference = self.embed_images(images.clone())[0]
        return replace(self, reference_embedding=reference)

    def __call__(self, images: Tensor) -> Tensor:
        """``(B,)`` rewards for ``(B, 3, H, W)`` images in [0, 1]."""
        embedding = self.embed_images(images)
        text = self.text_embedding.to(embedding)
        plain = embedding @ text
        if not self.directional:
            return plain
        if self.reference_embedding is None:
            raise ValueError(
                "the directional CLIP reward needs a reference image: call "
                "with_reference(decoded x̂₀ of the inverted latent) first."
            )
        reference = self.reference_embedding.to(embedding)
        text_change = _normalise(text - self.source_embedding.to(embedding))
        image_change = embedding - reference
        change = image_change.norm(dim=-1)
        directional = _normalise(image_change) @ text_change
        # Near no change the direction is undefined: score the plain cosine's gain over
        # the reference instead (0 for an unchanged image, the plain cosine's gradient).
        fallback = plain - reference @ text
        blend = (change / self.direction_threshold).clamp(max=1.0)
        return blend * directional + (1.0 - blend) * fallback


def load_open_clip(
    weights_file: str | Path, architecture: str, device: torch.device | str = "cpu"
) -> tuple[nn.Module, Callable[[Sequence[str]], Tensor]]:
    """Build an open_clip model from a local weights file, offline; return (model, tokenizer).

    ``.safetensors`` files load with safetensors, anything else with
    ``torch.load(weights_only=True)``. OpenAI's original CLIP checkpoints need the
    ``-quickgelu`` architectures (e.g. ``ViT-B-32-quickgelu``): a plain architecture
    loads them without a key error but computes wrong embeddings, so such a checkpoint
    with a non-quickgelu architecture is refused. Architectures whose tokenizer comes from
    the Hugging Face hub are refused (nothing may download).
    """
    import open_clip

    path = Path(weights_file)
    if not path.is_file():
        raise ValueError(
            f"open_clip weights file {path} does not exist; put the checkpoint for "
            f"{architecture!r} there (e.g. open_clip_pytorch_model.bin or .safetensors)."
        )
    config = open_clip.get_model_config(architecture)
    if config is None:
        raise ValueError(
            f"unknown open_clip architecture {architecture!r} (for {path}); see "
            "open_clip.list_models()."
        )
    if config.get("text_cfg", {}).get("hf_tokenizer_name"):
        raise ValueError(
            f"open_clip architecture {architecture!r} takes its tokenizer from the Hugging "
            "Face hub, which DragPD does not download; choose a CLIP architecture with "
            "open_clip's built-in tokenizer (e.g. ViT-B-32, ViT-B-16, ViT-L-14)."
        )
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    else:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
        if isinstance(state, dict) and "state_dict" in state:
            state = state["state_dict"]
    if not isinstance(state, dict):
        raise ValueError(
            f"{path} holds no state dict (a TorchScript archive?); convert it to .safetensors."
        )
    state = {k.removeprefix("module."): v for k, v in state.items()}
    openai_format = "input_resolution" in state or "context_length" in state
    if openai_format and not architecture.endswith("-quickgelu"):
        raise ValueError(
            f"{path} is an OpenAI-original CLIP checkpoint; use the architecture "
            f"{architecture}-quickgelu (OpenAI's models use QuickGELU), not {architecture!r}."
        )
    for key in ("input_resolution", "context_length", "vocab_size"):
        state.pop(key, None)
    model = open_clip.create_model(architecture, pretrained=None, device="cpu")
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as error:
        first = str(error).splitlines()[:3]
        raise ValueError(
            f"{path} does not fit the open_clip architecture {architecture!r}: "
            f"{' '.join(first)} — pick the architecture the file was trained with."
        ) from None
    return model.eval().to(device), open_clip.get_tokenizer(architecture)
