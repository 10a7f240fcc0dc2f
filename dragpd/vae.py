"""Between images and the UNet's latents, through a diffusers ``AutoencoderKL``.

Latents here are in the UNet's *scaled* convention (VAE mean × ``scaling_factor``,
0.18215 for SD1.x); images are ``(B, 3, H, W)`` in [0, 1].
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ._torch import frozen

__all__ = ["decode_latents", "encode_images", "latent_decoder"]


def _scaling(vae: nn.Module) -> float:
    return float(getattr(getattr(vae, "config", None), "scaling_factor", 0.18215))


def encode_images(vae: nn.Module, images: Tensor) -> Tensor:
    """``(B, 3, H, W)`` in [0, 1] → ``(B, C, H/f, W/f)`` scaled latents (the posterior mean).

    The latents are on the VAE's device, in float32.
    """
    weight = next(vae.parameters())
    with torch.no_grad():
        posterior = vae.encode(images.to(weight.device, weight.dtype) * 2.0 - 1.0).latent_dist
    return posterior.mean.float() * _scaling(vae)


def latent_decoder(vae: nn.Module):
    """A differentiable decoder ``latent → image in [0, 1]`` for the CLIP reward.

    Gradients flow to the latent, never to the VAE's weights.
    """
    scaling = _scaling(vae)
    dtype = next(vae.parameters()).dtype

    def decode(latent: Tensor) -> Tensor:
        with frozen(vae):
            images = vae.decode((latent / scaling).to(dtype)).sample.float()
        return (images / 2.0 + 0.5).clamp(0.0, 1.0)

    return decode


def decode_latents(vae: nn.Module, latent: Tensor) -> Tensor:
    """Scaled latents → ``(B, 3, H, W)`` images in [0, 1], without gradients."""
    with torch.no_grad():
        return latent_decoder(vae)(latent)
