"""DDIM inversion of a latent, and the final denoise of an edited latent."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .attention import mutual_self_attention
from .schedule import ddim_step, ddim_timesteps, previous_alpha, stable_diffusion_alphas

__all__ = ["Inversion", "denoise", "invert", "predict_clean", "predict_noise"]

StepCallback = Callable[[int, int], None]  # (step index, number of steps)


@dataclass(frozen=True, eq=False)
class Inversion:
    """A latent inverted to the edit timestep, with everything the edit needs.

    Attributes:
        latent: ``(1, C, h, w)`` z* at ``timesteps[0]``, in the UNet's (scaled) convention.
        trajectory: ``(K + 1, C, h, w)``: the latent at ``timesteps[0]``, …,
            ``timesteps[K-1]``, then the clean latent the inversion started from.
        timesteps: the K descending timesteps of the edit, e.g. (681, 661, …, 1).
        alphas_cumprod: ``(T,)`` float64 ᾱ table of the model's schedule.
        conditioning: ``(1, L, D)`` text-encoder hidden states the UNet was run with.
        num_inference_steps: DDIM steps over the whole schedule (sets the stride).
        prediction_type: what the UNet predicts; only "epsilon" is supported.
        model_key: identity of the model that made it (the sampler refuses another).
    """

    latent: Tensor
    trajectory: Tensor
    timesteps: tuple[int, ...]
    alphas_cumprod: Tensor
    conditioning: Tensor
    num_inference_steps: int
    prediction_type: str = "epsilon"
    model_key: str | None = None

    @property
    def timestep(self) -> int:
        """The timestep t* the latent is at."""
        return self.timesteps[0]

    @property
    def stride(self) -> int:
        return len(self.alphas_cumprod) // self.num_inference_steps

    def alpha(self, timestep: int) -> Tensor:
        return self.alphas_cumprod[timestep]

    def previous_alpha(self, timestep: int) -> Tensor:
        return previous_alpha(self.alphas_cumprod, timestep, self.stride)


def predict_noise(unet: nn.Module, latent: Tensor, timestep: int, conditioning: Tensor) -> Tensor:
    """ε̂ = UNet(z, t, c), run in the UNet's dtype and returned in the latent's."""
    dtype = next(unet.parameters()).dtype
    if conditioning.shape[0] != latent.shape[0]:
        conditioning = conditioning.expand(latent.shape[0], -1, -1)
    out = unet(latent.to(dtype), timestep, encoder_hidden_states=conditioning.to(dtype))
    sample = out.sample if hasattr(out, "sample") else out[0]
    return sample.to(latent.dtype)


@torch.no_grad()
def predict_clean(unet: nn.Module, latent: Tensor, inversion: Inversion) -> Tensor:
    """x̂₀ of a latent at ``inversion.timestep``, for previews (one UNet forward, no grad).

    Returns:
        ``(1, C, h, w)`` scaled clean-latent estimate.
    """
    from .schedule import predict_x0

    t = inversion.timestep
    eps = predict_noise(unet, latent, t, inversion.conditioning.to(latent.device))
    return predict_x0(latent, eps, inversion.alpha(t))


def _as_batch_of_one(name: str, tensor: Tensor, ndim: int) -> Tensor:
    if tensor.ndim == ndim - 1:
        tensor = tensor[None]
    if tensor.ndim != ndim or tensor.shape[0] != 1:
        raise ValueError(
            f"{name} must be a single item of {ndim - 1} dims (or a batch of one); got shape "
            f"{tuple(tensor.shape)}. Split a batch into single images first."
        )
    return tensor


@torch.no_grad()
def invert(
    unet: nn.Module,
    latent: Tensor,
    conditioning: Tensor,
    num_inference_steps: int = 50,
    strength: float = 0.7,
    alphas_cumprod: Tensor | None = None,
    model_key: str | None = None,
    callback: StepCallback | None = None,
) -> Inversion:
    """Deterministic DDIM inversion of a clean latent up to the edit timestep.

    Step k evaluates ε̂ at the timestep it moves *to*, as diffusers' inverse DDIM and
    DragDiffusion do.

    Args:
        unet: a diffusers ``UNet2DConditionModel`` (epsilon prediction).
        latent: ``(1, C, h, w)`` clean latent, scaled (VAE mean × scaling factor).
        conditioning: ``(1, L, D)`` encoder hidden states of the prompt.
        num_inference_steps, strength: see :func:`~dragpd.schedule.ddim_timesteps`.
        alphas_cumprod: ``(T,)`` ᾱ table; SD1.x's when ``None``.
        model_key: stored on the result to recognise the model later.
        callback: called as ``callback(step, total)`` after each step.

    Returns:
        :class:`Inversion`; tensors on the latent's device and dtype.
    """
    latent = _as_batch_of_one("latent", latent, 4)
    conditioning = _as_batch_of_one("conditioning", conditioning, 3)
    alphas = stable_diffusion_alphas() if alphas_cumprod is None else alphas_cumprod.double()
    alphas = alphas.cpu()
    timesteps = ddim_timesteps(num_inference_steps, strength, len(alphas))
    stride = len(alphas) // num_inference_steps
    z = latent.clone()
    path = [z]
    for step, t in enumerate(reversed(timesteps)):
        eps = predict_noise(unet, z, t, conditioning)
        z = ddim_step(z, eps, previous_alpha(alphas, t, stride), alphas[t])
        path.append(z)
        if callback is not None:
            callback(step + 1, len(timesteps))
    return Inversion(
        latent=z.clone(),
        trajectory=torch.cat(path[::-1], dim=0),
        timesteps=tuple(timesteps),
        alphas_cumprod=alphas,
        conditioning=conditioning.clone(),
        num_inference_steps=num_inference_steps,
        model_key=model_key,
    )


@torch.no_grad()
def denoise(
    unet: nn.Module,
    latent: Tensor,
    inversion: Inversion,
    mutual_attention_start: int | None = 10,
    callback: StepCallback | None = None,
) -> Tensor:
    """DDIM-denoise an (edited) latent from ``inversion.timestep`` to a clean latent.

    With ``mutual_attention_start`` set, the UNet runs on ``[reference, edited]`` where
    the reference is the inversion's own trajectory at each step, and self-attention
    layers from that index on read the reference's keys and values (see
    :mod:`dragpd.attention`). ``None`` denoises the edited latent alone.

    Args:
        latent: ``(1, C, h, w)`` at ``inversion.timestep``.

    Returns:
        ``(1, C, h, w)`` clean latent in the UNet's (scaled) convention.
    """
    latent = _as_batch_of_one("latent", latent, 4)
    mutual = mutual_attention_start is not None
    context = mutual_self_attention(unet, mutual_attention_start) if mutual else nullcontext()
    z = latent.clone()
    with context:
        for step, t in enumerate(inversion.timesteps):
            if mutual:
                reference = inversion.trajectory[step : step + 1].to(z)
                eps = predict_noise(unet, torch.cat([reference, z]), t, inversion.conditioning)[1:]
            else:
                eps = predict_noise(unet, z, t, inversion.conditioning)
            z = ddim_step(z, eps, inversion.alpha(t), inversion.previous_alpha(t))
            if callback is not None:
                callback(step + 1, len(inversion.timesteps))
    return z
