"""Motion supervision (DragDiffusion, Shi et al. 2024) and the masked background term."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .points import BrushStroke, DragPoints, rasterize_strokes

__all__ = [
    "background_loss",
    "default_editable_region",
    "mask_to_grid",
    "motion_supervision_loss",
    "sample_patches",
]


def sample_patches(features: Tensor, centers: Tensor, radius: int) -> Tensor:
    """Bilinearly sample square patches of features around sub-pixel centres.

    Args:
        features: ``(C, h, w)``.
        centers: ``(N, 2)`` (x, y) in feature cells; the border is extended outside.
        radius: patch radius r; a patch is ``(2r+1)²`` cells spaced one cell apart.

    Returns:
        ``(N, C, 2r+1, 2r+1)``; at integer centres inside the map this equals slicing.
    """
    _, height, width = features.shape
    offsets = torch.arange(-radius, radius + 1, device=features.device, dtype=features.dtype)
    oy, ox = torch.meshgrid(offsets, offsets, indexing="ij")
    centers = centers.to(device=features.device, dtype=features.dtype)
    xs = centers[:, 0, None, None] + ox  # (N, 2r+1, 2r+1)
    ys = centers[:, 1, None, None] + oy
    # grid_sample with align_corners=True maps -1 → centre of cell 0, +1 → centre of last.
    grid = torch.stack(
        (2.0 * xs / max(width - 1, 1) - 1.0, 2.0 * ys / max(height - 1, 1) - 1.0), dim=-1
    )
    batch = features[None].expand(len(centers), -1, -1, -1)
    return F.grid_sample(batch, grid, mode="bilinear", padding_mode="border", align_corners=True)


def motion_supervision_loss(
    features: Tensor,
    handles: Tensor,
    targets: Tensor,
    radius: int = 1,
    reach_distance: float = 2.0,
    anchor_patches: Tensor | None = None,
) -> Tensor:
    """L_ms = Σᵢ (2r+1)² · mean|sg(F(Ω(hᵢ))) − F(Ω(hᵢ) + dᵢ)|, dᵢ = (gᵢ−hᵢ)/‖gᵢ−hᵢ‖.

    The step direction dᵢ is a unit vector, so the patch one cell ahead of the handle is
    pulled toward the (detached) patch at the handle: content moves by one cell per
    success. Pairs within ``reach_distance`` of their target drop out.

    Args:
        features: ``(C, h, w)`` features of the current latent (with grad).
        handles, targets: ``(N, 2)`` (x, y) in feature cells.
        radius: patch radius r_m.
        reach_distance: pairs closer than this (cells) to their target are done.
        anchor_patches: ``(N, C, 2r+1, 2r+1)`` to pull toward instead of the current
            patch at the handle (GoodDrag's information-preserving supervision: the
            original features at the original handles), or ``None``.

    Returns:
        Scalar loss (0 when every pair has arrived).
    """
    handles = handles.to(features.device, features.dtype)
    targets = targets.to(features.device, features.dtype)
    offset = targets - handles
    distance = offset.norm(dim=-1)
    active = distance >= reach_distance
    if not bool(active.any()):
        return features.sum() * 0.0
    direction = offset[active] / distance[active, None]
    moved = sample_patches(features, handles[active] + direction, radius)
    if anchor_patches is None:
        anchor = sample_patches(features, handles[active], radius).detach()
    else:
        anchor = anchor_patches[active].to(features.dtype)
    per_pair = (moved - anchor).abs().flatten(1).mean(dim=1)
    return (2 * radius + 1) ** 2 * per_pair.sum()


def hold_loss(features: Tensor, handles: Tensor, held_patches: Tensor, radius: int = 1) -> Tensor:
    """Σᵢ (2r+1)² · mean|F(Ω(hᵢ)) − sg(held patchᵢ)|: keep moved content where it arrived.

    Args:
        features: ``(C, h, w)`` with grad; handles: ``(N, 2)`` (x, y) cells;
        held_patches: ``(N, C, 2r+1, 2r+1)`` sampled at the handles when they arrived.
    """
    handles = handles.to(features.device, features.dtype)
    patches = sample_patches(features, handles, radius)
    return (patches - held_patches).abs().mean(dim=(1, 2, 3)).sum() * (2 * radius + 1) ** 2


def background_loss(prediction: Tensor, reference: Tensor, editable: Tensor) -> Tensor:
    """Σ|(z_{t−1}(z) − z_{t−1}(z*)) ⊙ (1 − M)|: keep the one-step prediction outside M.

    Args:
        prediction: ``(B, C, h, w)`` one DDIM step from the optimised latent.
        reference: ``(B, C, h, w)`` the same step from the inverted latent.
        editable: ``(h, w)`` float or bool, 1 where the image may change.
    """
    keep = 1.0 - editable.to(prediction.dtype)
    return ((prediction - reference) * keep).abs().sum()


def default_editable_region(points: DragPoints, margin: float) -> Tensor:
    """Capsules of radius ``margin · min(H, W)`` px around each handle → target path.

    Used when the user paints no mask: with no region at all the background drifts.

    Returns:
        ``(H, W)`` bool.
    """
    radius = margin * min(points.image_size)
    strokes = [
        BrushStroke((tuple(h), tuple(t)), radius)
        for h, t in zip(points.handles.tolist(), points.targets.tolist(), strict=True)
    ]
    return rasterize_strokes(strokes, points.image_size)


def mask_to_grid(mask: Tensor, size: tuple[int, int]) -> Tensor:
    """Resize an ``(H, W)`` bool mask to ``size``: a cell is editable if any pixel in it is.

    Returns:
        ``(h, w)`` float32 of 0s and 1s.
    """
    area = F.interpolate(mask[None, None].float(), size=size, mode="area")[0, 0]
    return (area > 0).float()
