"""Measuring an edit of a toy scene against its known ground truth."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

__all__ = ["EditScore", "background_psnr", "score_drag", "shape_pixels"]

COLOR_TOLERANCE = 50.0  # RGB distance under which a pixel counts as the shape's colour


def shape_pixels(image: Image.Image, rgb, tolerance: float = COLOR_TOLERANCE) -> np.ndarray:
    """``(H, W)`` bool: pixels within ``tolerance`` (RGB distance) of the shape's colour."""
    pixels = np.asarray(image.convert("RGB"), dtype=np.float64)
    return np.linalg.norm(pixels - np.asarray(rgb, dtype=np.float64), axis=-1) < tolerance


def _centroid(mask: np.ndarray) -> np.ndarray | None:
    if not mask.any():
        return None
    ys, xs = np.nonzero(mask)
    return np.array([xs.mean(), ys.mean()])


def _disc(size: tuple[int, int], center, radius: float) -> np.ndarray:
    ys, xs = np.mgrid[0 : size[0], 0 : size[1]]
    return (xs - center[0]) ** 2 + (ys - center[1]) ** 2 <= radius**2


def background_psnr(before: Image.Image, after: Image.Image, keep: np.ndarray) -> float:
    """PSNR (dB) of ``after`` against ``before`` over the pixels where ``keep`` is True."""
    a = np.asarray(before.convert("RGB"), dtype=np.float64)[keep]
    b = np.asarray(after.convert("RGB"), dtype=np.float64)[keep]
    mse = float(np.mean((a - b) ** 2)) if a.size else 0.0
    return 99.0 if mse == 0 else 10 * math.log10(255.0**2 / mse)


@dataclass(frozen=True)
class EditScore:
    """How well a shape was dragged (all distances in pixels)."""

    error: float  # centroid after the edit ↔ where it should be (inf if the shape vanished)
    moved: float  # centroid displacement along the drag direction
    area_ratio: float  # shape pixels after / before (1 = size kept)
    color_shift: float  # RGB distance between the shape's mean colour before and after
    background_psnr: float  # dB, outside discs around the shape's old and new place


def score_drag(
    before: Image.Image, after: Image.Image, shape: dict, target, new_rgb=None
) -> EditScore:
    """Score dragging ``shape`` (a scene's shape dict) so its centre lands on ``target``.

    The shape is found by colour in both images, restricted to a disc around its old and
    new place so another shape cannot be mistaken for it. With ``new_rgb`` (a recolour
    edit) the edited image is searched for either colour, so a recoloured shape still
    counts as there.
    """
    size = before.size[::-1]
    center = np.asarray(shape["center"], dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    offset = target - center
    reach = shape["size"] * 0.9 + 2
    around = _disc(size, center, reach) | _disc(size, target, reach)
    mask_before = shape_pixels(before, shape["rgb"]) & _disc(size, center, reach)
    found = shape_pixels(after, shape["rgb"])
    if new_rgb is not None:
        found |= shape_pixels(after, new_rgb)
    mask_after = found & around
    c0, c1 = _centroid(mask_before), _centroid(mask_after)
    keep = ~around
    psnr = background_psnr(before, after, keep)
    if c0 is None or c1 is None:
        return EditScore(math.inf, 0.0, 0.0, math.inf, psnr)
    direction = offset / max(np.linalg.norm(offset), 1e-9)
    pixels_before = np.asarray(before.convert("RGB"), dtype=np.float64)[mask_before]
    pixels_after = np.asarray(after.convert("RGB"), dtype=np.float64)[mask_after]
    return EditScore(
        error=float(np.linalg.norm(c1 - (c0 + offset))),
        moved=float((c1 - c0) @ direction),
        area_ratio=float(mask_after.sum() / mask_before.sum()),
        color_shift=float(np.linalg.norm(pixels_after.mean(0) - pixels_before.mean(0))),
        background_psnr=psnr,
    )
