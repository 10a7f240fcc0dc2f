"""Prior-preservation regularisation (PPR): keep the optimised latent in the prior's distribution.

L_ppr = Σ_c KL(N(μ_c, σ_c²) ‖ N(μ_ref,c, σ_ref,c²)) over per-channel *sample statistics*.
They are pooled over the whole latent, or over a region in both latents, so they are
permutation-invariant: moving content around costs nothing, while drifting away from
the prior's distribution (brighter, flatter, noisier) does. Spatially aligned small
windows would penalise the edit itself.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["PPR_MODES", "channel_statistics", "gaussian_kl", "implied_noise", "ppr_loss"]

PPR_MODES = ("reference", "noise")
SIGMA_FLOOR = 1e-4  # σ is sqrt(var + floor²): finite KL and gradients on flat latents


def channel_statistics(latent: Tensor, region: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Per-channel mean and (floored) standard deviation.

    Args:
        latent: ``(B, C, h, w)``.
        region: optional ``(h, w)`` weights (bool or 0/1 float) of the cells to pool over.

    Returns:
        ``(mean, std)``, each ``(B, C)``.
    """
    if region is None:
        weights = torch.ones(latent.shape[-2:], dtype=latent.dtype, device=latent.device)
    else:
        weights = region.to(device=latent.device, dtype=latent.dtype)
    total = weights.sum()
    if float(total) <= 0:
        raise ValueError("the PPR region is empty; paint a region or use the whole latent.")
    mean = (latent * weights).sum(dim=(-2, -1)) / total
    var = (((latent - mean[..., None, None]) ** 2) * weights).sum(dim=(-2, -1)) / total
    return mean, (var + SIGMA_FLOOR**2).sqrt()


def gaussian_kl(mean: Tensor, std: Tensor, mean_ref: Tensor, std_ref: Tensor) -> Tensor:
    """KL(N(μ, σ²) ‖ N(μ_ref, σ_ref²)) elementwise; exactly 0 where the two are equal."""
    return torch.log(std_ref / std) + (std**2 + (mean - mean_ref) ** 2) / (2 * std_ref**2) - 0.5


def implied_noise(latent: Tensor, clean: Tensor, alpha: Tensor | float) -> Tensor:
    """ε = (z − √ᾱ z₀) / √(1−ᾱ): the noise that would turn ``clean`` into ``latent``."""
    alpha = torch.as_tensor(alpha, dtype=latent.dtype, device=latent.device)
    return (latent - alpha.sqrt() * clean.to(latent)) / (1.0 - alpha).sqrt()


def ppr_loss(
    latent: Tensor,
    reference: Tensor,
    region: Tensor | None = None,
    mode: str = "reference",
    alpha: Tensor | float | None = None,
) -> Tensor:
    """Prior-preservation loss, a scalar summed over channels (mean over the batch).

    Args:
        latent: ``(B, C, h, w)`` the latent being optimised.
        reference: ``(1 or B, C, h, w)``. In ``"reference"`` mode the inverted latent z*
            (on the prior's trajectory); in ``"noise"`` mode the clean latent z₀.
        region: optional ``(h, w)`` cells to pool over, in both latents.
        mode: ``"reference"``: statistics of z against those of z*; ``"noise"``:
            statistics of the noise z implies at ᾱ (see :func:`implied_noise`) against
            N(0, 1).
        alpha: ᾱ_t of the latent's timestep; required in ``"noise"`` mode.

    Returns:
        Scalar ≥ 0, exactly 0 when ``latent`` equals ``reference`` (reference mode).
    """
    if mode == "reference":
        mean, std = channel_statistics(latent, region)
        mean_ref, std_ref = channel_statistics(reference.to(latent), region)
    elif mode == "noise":
        if alpha is None:
            raise ValueError("ppr_loss(mode='noise') needs alpha, the ᾱ of the timestep.")
        mean, std = channel_statistics(implied_noise(latent, reference, alpha), region)
        mean_ref, std_ref = torch.zeros_like(mean), torch.ones_like(std)
    else:
        raise ValueError(f"PPR mode must be one of {PPR_MODES}; got {mode!r}.")
    return gaussian_kl(mean, std, mean_ref, std_ref).sum(dim=-1).mean()
