"""Point tracking: nearest neighbour (DragGAN / DragDiffusion) and DWPT (DragPD)."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["track_points"]


def track_points(
    features: Tensor,
    reference: Tensor,
    handles: Tensor,
    targets: Tensor,
    radius: int = 3,
    beta: float = 0.0,
) -> Tensor:
    """Find each handle again in a ``(2r+1)²`` window of the current features.

    For handle hᵢ, direction dᵢ = (gᵢ − hᵢ)/‖gᵢ − hᵢ‖ and each candidate cell q of the
    window (clipped at the border):

    * distance  D(q) = ‖F(q) − fᵢ‖₁, fᵢ the feature at the *original* handle;
    * normalised distance  D̃(q) = (D(q) − min D) / std D over the window, so the
      weighting is scale-free (a β tuned on one model transfers to another); a flat
      window (std 0) has D̃ ≡ 0;
    * progress  P(q) = min(⟨q − hᵢ, dᵢ⟩, ‖gᵢ − hᵢ‖) / r, capped at the target so no
      candidate gains by overshooting, and 0 when the handle sits on its target.

    The new handle is argmin_q D̃(q) − β·P(q), the first in row-major order on ties.
    ``beta = 0`` is exactly L1 nearest neighbour. With β > 0 (DWPT), among candidates
    whose distances differ by less than about β standard deviations the one furthest
    toward the target wins, while a uniquely good match behind the handle — many
    standard deviations better than the rest — still beats dissimilar cells ahead.

    Args:
        features: ``(C, h, w)`` current features.
        reference: ``(N, C)`` features at the original handles.
        handles: ``(N, 2)`` (x, y) current handle cells (integer-valued).
        targets: ``(N, 2)`` (x, y) target cells.
        radius: window radius r_p.
        beta: direction weight β ≥ 0.

    Returns:
        ``(N, 2)`` float, integer-valued (x, y) new handle cells. Inputs are not modified.
    """
    if beta < 0:
        raise ValueError(f"beta must be >= 0 (0 is nearest-neighbour tracking); got {beta}.")
    _, height, width = features.shape
    features = features.detach()
    new_handles = []
    for i, (hx, hy) in enumerate(handles.detach().round().long().tolist()):
        x0, x1 = max(hx - radius, 0), min(hx + radius, width - 1)
        y0, y1 = max(hy - radius, 0), min(hy + radius, height - 1)
        window = features[:, y0 : y1 + 1, x0 : x1 + 1]
        ref = reference[i].detach().to(window.dtype).to(window.device)
        distance = (window - ref[:, None, None]).abs().sum(dim=0)  # (wh, ww)
        score = distance
        if beta > 0:
            score = _dwpt_score(distance, (hx, hy), (x0, y0), targets[i], radius, beta)
        flat = int(torch.argmin(score.flatten()))
        row, col = divmod(flat, score.shape[1])
        new_handles.append((x0 + col, y0 + row))
    return torch.tensor(new_handles, dtype=handles.dtype, device=handles.device)


def _dwpt_score(
    distance: Tensor,
    handle: tuple[int, int],
    origin: tuple[int, int],
    target: Tensor,
    radius: int,
    beta: float,
) -> Tensor:
    """D̃(q) − β·P(q) over one window (see :func:`track_points`)."""
    distance = distance.double()
    spread = distance.std(unbiased=False) if distance.numel() > 1 else distance.new_zeros(())
    shifted = distance - distance.min()
    normalised = shifted / spread if spread > 0 else torch.zeros_like(shifted)
    offset = target.detach().double().cpu() - torch.tensor(handle, dtype=torch.float64)
    length = float(offset.norm())
    if length == 0.0:
        return normalised
    direction = (offset / length).to(distance.device)
    height, width = distance.shape
    ys = torch.arange(height, dtype=torch.float64, device=distance.device) + origin[1] - handle[1]
    xs = torch.arange(width, dtype=torch.float64, device=distance.device) + origin[0] - handle[0]
    progress = xs[None, :] * direction[0] + ys[:, None] * direction[1]
    progress = progress.clamp(max=length) / radius
    return normalised - beta * progress
