"""Deterministic DDIM in ᾱ form: timesteps, one step, inversion (Song et al., 2021).

Pure functions on tensors. ``alphas_cumprod`` is the ``(T,)`` table ᾱ_t of the model's
noise schedule; the stride between used timesteps is ``T // num_steps`` and, as in
diffusers' ``DDIMScheduler(steps_offset=1, set_alpha_to_one=False)`` that DragDiffusion
uses, timestep ``t`` steps down to ``t − stride``, and below 0 to ᾱ_0.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = [
    "ddim_step",
    "ddim_timesteps",
    "predict_x0",
    "previous_alpha",
    "stable_diffusion_alphas",
]


def stable_diffusion_alphas(
    num_train_timesteps: int = 1000, beta_start: float = 0.00085, beta_end: float = 0.012
) -> Tensor:
    """ᾱ_t of Stable Diffusion 1.x's "scaled_linear" schedule.

    Returns:
        ``(num_train_timesteps,)`` float64.
    """
    betas = (
        torch.linspace(beta_start**0.5, beta_end**0.5, num_train_timesteps, dtype=torch.float64)
        ** 2
    )
    return torch.cumprod(1.0 - betas, dim=0)


def ddim_timesteps(
    num_steps: int = 50, strength: float = 0.7, num_train_timesteps: int = 1000
) -> list[int]:
    """The timesteps a drag edit uses, from the inversion point down to the last step.

    Of ``num_steps`` DDIM steps over ``[1, num_train_timesteps)`` the last
    ``round(strength · num_steps)`` are kept: ``(50, 0.7)`` gives ``[681, 661, …, 21, 1]``
    (35 timesteps); the image is inverted up to the first of them, edited there, and
    denoised through all of them.

    Returns:
        Descending list of ints.
    """
    if num_steps < 1:
        raise ValueError(f"num_steps must be at least 1; got {num_steps}.")
    if not 0.0 < strength <= 1.0:
        raise ValueError(f"strength must be in (0, 1]; got {strength}.")
    kept = round(strength * num_steps)
    if kept < 1:
        raise ValueError(
            f"strength {strength} keeps no step of {num_steps}: raise strength or num_steps."
        )
    stride = num_train_timesteps // num_steps
    return [i * stride + 1 for i in reversed(range(kept))]


def previous_alpha(alphas_cumprod: Tensor, timestep: int, stride: int) -> Tensor:
    """ᾱ of the timestep one DDIM step below ``timestep`` (ᾱ_0 below zero)."""
    previous = timestep - stride
    return alphas_cumprod[previous] if previous >= 0 else alphas_cumprod[0]


def predict_x0(latent: Tensor, eps: Tensor, alpha: Tensor | float) -> Tensor:
    """x̂₀ = (z − √(1−ᾱ) ε̂) / √ᾱ."""
    alpha = torch.as_tensor(alpha, dtype=latent.dtype, device=latent.device)
    return (latent - (1.0 - alpha).sqrt() * eps) / alpha.sqrt()


def ddim_step(
    latent: Tensor, eps: Tensor, alpha_from: Tensor | float, alpha_to: Tensor | float
) -> Tensor:
    """One deterministic DDIM step from noise level ᾱ_from to ᾱ_to with prediction ε̂.

    Denoising when ``alpha_to > alpha_from``, inverting when ``alpha_to < alpha_from``.

    Args:
        latent: ``(B, C, h, w)`` at ᾱ_from.
        eps: ``(B, C, h, w)`` predicted noise.

    Returns:
        ``(B, C, h, w)`` at ᾱ_to.
    """
    alpha_to = torch.as_tensor(alpha_to, dtype=latent.dtype, device=latent.device)
    x0 = predict_x0(latent, eps, alpha_from)
    return alpha_to.sqrt() * x0 + (1.0 - alpha_to).sqrt() * eps
