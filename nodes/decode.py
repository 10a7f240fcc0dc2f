"""DragPD Decode: the edited image, and a before/after comparison with the points drawn."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from dragpd.overlay import draw_drag, side_by_side
from dragpd.points import scale_points

from . import comfy_bridge as bridge


def _to_pil(image: torch.Tensor) -> Image.Image:
    array = (image[0].clamp(0, 1).cpu().numpy() * 255).round().astype(np.uint8)
    return Image.fromarray(array)


def _to_image(picture: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(picture.convert("RGB"), dtype=np.float32) / 255)[None]


class DragPDDecode:
    DESCRIPTION = (
        "Decodes the sampler's LATENT with the VAE and draws a comparison: the original and "
        "the edit side by side with each handle → target arrow (and where the handles "
        "ended)."
    )
    CATEGORY = "DragPD"
    FUNCTION = "decode"
    RETURN_TYPES = ("IMAGE", "IMAGE")
    RETURN_NAMES = ("image", "comparison")
    OUTPUT_TOOLTIPS = ("The edited image.", "Before | after with the drag drawn over them.")

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "vae": ("VAE", {"tooltip": "The checkpoint's VAE."}),
                "latent": ("LATENT", {"tooltip": "From the DWPT Drag Sampler."}),
            },
            "optional": {
                "points": (
                    "DRAGPD_POINTS",
                    {
                        "tooltip": "Points to draw (the picker's, or the "
                        "sampler's with the final handles)."
                    },
                ),
                "original": (
                    "IMAGE",
                    {"tooltip": "The image before the edit, for the comparison."},
                ),
            },
        }

    def decode(self, vae, latent, points=None, original=None):
        image = bridge.decode_images(vae, latent["samples"])
        edited = _to_pil(image)
        before = _to_pil(original) if original is not None else edited
        if before.size != edited.size:
            before = before.resize(edited.size, Image.Resampling.BICUBIC)
        if points is None:
            return (image, _to_image(side_by_side(before, edited)))
        scale = max(1, 512 // max(edited.size))
        size = edited.size[::-1]
        handles = scale_points(points.handles, points.image_size, size)
        targets = scale_points(points.targets, points.image_size, size)
        comparison = side_by_side(
            draw_drag(before, handles, targets, scale=scale),
            draw_drag(edited, handles, targets, handles, scale=scale),
        )
        return (image, _to_image(comparison))
