"""The drag loop: optimise the inverted latent with motion supervision and point tracking."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from ._torch import frozen
from .config import DragConfig
from .features import capture_up_block, resize_features
from .inversion import Inversion, predict_noise
from .motion import (
    background_loss,
    default_editable_region,
    hold_loss,
    mask_to_grid,
    motion_supervision_loss,
    sample_patches,
)
from .points import DragPoints, scale_points
from .prior import ppr_loss
from .reward import ClipReward
from .schedule import ddim_step, predict_x0
from .tracking import track_points

__all__ = ["DragCallback", "DragResult", "DragStep", "drag", "editable_region"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class DragStep:
    """What one iteration saw.

    Attributes:
        iteration: 0-based iteration index.
        handles: ``(N, 2)`` float64 (x, y) image pixels where the handles were tracked to.
        loss: total loss of the update made in this iteration (``None`` if none was made).
        terms: its parts: "motion", and where active "background", "ppr" (weighted
            losses) and "clip_reward" (the unweighted mean reward R).
    """

    iteration: int
    handles: Tensor
    loss: float | None = None
    terms: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True, eq=False)
class DragResult:
    """Outcome of :func:`drag`.

    Attributes:
        latent: ``(1, C, h, w)`` the optimised latent at ``inversion.timestep`` (detached).
        handles: ``(N, 2)`` float64 (x, y) image pixels where the handles ended.
        history: one :class:`DragStep` per iteration.
        stop_reason: "reached" (all handles arrived), "max_iterations" or "callback".
        iterations: number of latent updates made.
        editable: ``(H, W)`` bool region that was allowed to change, or ``None``.
    """

    latent: Tensor
    handles: Tensor
    history: list[DragStep] = field(default_factory=list)
    stop_reason: str = "max_iterations"
    iterations: int = 0
    editable: Tensor | None = None


DragCallback = Callable[[DragStep, Tensor], "bool | None"]
"""``callback(step, latent)`` after tracking in each iteration; return True to stop."""

Decoder = Callable[[Tensor], Tensor]
"""Differentiable ``(B, C, h, w)`` scaled latent → ``(B, 3, H, W)`` image in [0, 1]."""


def editable_region(
    points: DragPoints, config: DragConfig, mask: Tensor | None = None
) -> Tensor | None:
    """The ``(H, W)`` bool region a drag may change.

    ``mask`` (e.g. from another node) overrides the points' own mask; without either,
    the default capsules around the paths when ``config.default_region``, else ``None``.
    """
    if mask is not None:
        mask = torch.as_tensor(mask).detach().cpu()
        if mask.ndim == 3 and mask.shape[0] == 1:
            mask = mask[0]
        if tuple(mask.shape) != points.image_size:
            raise ValueError(
                f"mask has shape {tuple(mask.shape)} but the points refer to a "
                f"{points.image_size[0]}×{points.image_size[1]} image; resize the mask."
            )
        return mask > 0.5 if mask.is_floating_point() else mask.bool()
    if points.mask is not None:
        return points.mask
    if config.default_region:
        return default_editable_region(points, config.default_region_margin)
    return None


def _check_inputs(unet: nn.Module, inversion: Inversion, points: DragPoints) -> None:
    if any(p.is_inference() for p in unet.parameters()):
        raise ValueError(
            "the UNet's weights are inference tensors (created under torch.inference_mode), "
            "which autograd cannot use; build or copy the UNet under "
            "torch.inference_mode(False)."
        )
    if inversion.prediction_type != "epsilon":
        raise ValueError(
            f"prediction type {inversion.prediction_type!r} is not supported; DragPD needs "
            "an epsilon-prediction model (SD1.x)."
        )
    height, width = points.image_size
    h, w = inversion.latent.shape[-2:]
    if abs(height / h - width / w) > 1e-6 * max(height / h, width / w):
        raise ValueError(
            f"the points refer to a {height}×{width} image but the latent is {h}×{w}, a "
            "different aspect ratio; pick points on the image that was encoded."
        )


def drag(
    unet: nn.Module,
    inversion: Inversion,
    points: DragPoints,
    config: DragConfig | None = None,
    mask: Tensor | None = None,
    callback: DragCallback | None = None,
    reward: ClipReward | None = None,
    decoder: Decoder | None = None,
) -> DragResult:
    """Move the content at each handle to its target by optimising the inverted latent.

    Per iteration: one UNet forward on z (features F from ``config.feature_block``
    resized to the supervision grid, and ε̂); track the handles on F against the
    features at the original handles (DWPT when ``config.dwpt_beta > 0``); stop if all
    arrived; else one Adam step on z of motion supervision plus the masked background
    term on the one-step DDIM prediction; then, with ``config.latent_blending``, reset z
    outside the editable region. With ``config.ppr_weight > 0`` the PPR term
    (:func:`~dragpd.prior.ppr_loss`) and with ``config.clip_weight > 0`` the CLIP reward
    on the decoded x̂₀ (every ``config.clip_every`` iterations) join the loss; each is
    exactly absent at weight 0. With a reward and ``config.clip_iterations > 0`` the text
    edit is a second phase: once the handles arrive (or the drag's iterations run out),
    ``clip_iterations`` more steps optimise the reward with the background and PPR terms
    and a hold on the moved content (:func:`~dragpd.motion.hold_loss`) instead of motion
    supervision; with ``clip_iterations = 0`` the reward acts during the drag. UNet
    weights are frozen (and restored); gradients reach only z. Runs under
    ``inference_mode(False)`` and ``enable_grad()``, so it may be called from inside
    ``torch.inference_mode()``.

    Args:
        unet: diffusers ``UNet2DConditionModel`` whose weights are normal tensors.
        inversion: from :func:`~dragpd.inversion.invert` with the same UNet.
        points: handle → target pairs in image pixels.
        config: :class:`DragConfig`; ``DragConfig()`` when ``None``.
        mask: ``(H, W)`` editable region overriding ``points.mask``.
        callback: ``callback(step, latent)`` each iteration; return True to stop.
        reward: :class:`~dragpd.reward.ClipReward`, required when ``config.clip_weight > 0``.
        decoder: differentiable latent → image, required with ``reward`` (see ``Decoder``).

    Returns:
        :class:`DragResult`. Nothing passed in is modified.
    """
    config = config or DragConfig()
    _check_inputs(unet, inversion, points)
    if config.clip_weight > 0 and (reward is None or decoder is None):
        raise ValueError(
            "clip_weight > 0 needs a reward (ClipReward.from_open_clip(...)) and a "
            "differentiable decoder; pass both, or set clip_weight=0."
        )
    with torch.inference_mode(False), torch.enable_grad(), frozen(unet):
        return _optimise(unet, inversion, points, config, mask, callback, reward, decoder)


def _optimise(
    unet: nn.Module,
    inversion: Inversion,
    points: DragPoints,
    config: DragConfig,
    mask: Tensor | None,
    callback: DragCallback | None,
    reward: ClipReward | None,
    decoder: Decoder | None,
) -> DragResult:
    z0 = inversion.latent.detach().float().clone()
    cond = inversion.conditioning.detach().clone()
    t = inversion.timestep
    alpha, alpha_prev = inversion.alpha(t), inversion.previous_alpha(t)
    image_size = points.image_size
    latent_size = tuple(z0.shape[-2:])
    grid = tuple(max(1, round(s * config.supervision_scale)) for s in image_size)

    upper = torch.tensor([grid[1] - 1, grid[0] - 1], dtype=torch.float64)
    handles, targets = (
        torch.minimum(scale_points(p, image_size, grid).round().clamp(min=0), upper)
        for p in (points.handles, points.targets)
    )
    region = editable_region(points, config, mask)
    region_latent = None if region is None else mask_to_grid(region, latent_size).to(z0)
    use_background = region_latent is not None and config.background_weight > 0
    ppr_region = region_latent if config.ppr_window == "region" else None
    ppr_reference = z0 if config.ppr_mode == "reference" else inversion.trajectory[-1:].float()

    def to_image(grid_points: Tensor) -> Tensor:
        return scale_points(grid_points.double().cpu(), grid, image_size)

    def forward(latent: Tensor) -> tuple[Tensor, Tensor]:
        autocast = torch.autocast(
            device_type=latent.device.type,
            dtype=getattr(torch, config.autocast_dtype or "float32"),
            enabled=config.autocast_dtype is not None,
        )
        with autocast:
            eps = predict_noise(unet, latent, t, cond)
        features = resize_features(capture.output.float(), grid)[0]
        return eps.float(), features

    z = z0.clone().requires_grad_(True)
    optimizer = torch.optim.Adam([z], lr=config.lr)
    # float16 autocast: scale the loss so small gradients survive the half-precision backward
    # (DragDiffusion does the same); a no-op otherwise.
    scaler = torch.amp.GradScaler(z.device.type, enabled=config.autocast_dtype == "float16")
    history: list[DragStep] = []
    stop_reason = "max_iterations"
    updates = text_updates = 0
    # With a reward and clip_iterations > 0 the edit has two phases: the drag, then the text
    # edit, which holds the moved content (patches at the handles when the drag ended).
    text_phase = config.clip_weight > 0 and config.clip_iterations > 0
    held = None
    budget = config.max_iterations + (config.clip_iterations + 1 if text_phase else 0)
    with capture_up_block(unet, config.feature_block) as capture:
        reference = anchor = prediction_ref = None
        for iteration in range(budget):
            eps, features = forward(z)
            if reference is None:  # iteration 0: z == z0, this forward is also the reference
                reference = features.detach()[:, handles[:, 1].long(), handles[:, 0].long()].T
                prediction_ref = ddim_step(z0, eps.detach(), alpha, alpha_prev)
                if config.anchor_original_features:
                    anchor = sample_patches(features.detach(), handles, config.motion_radius)
                needs_reference = reward is not None and reward.reference_embedding is None
                if config.clip_weight > 0 and reward.directional and needs_reference:
                    with torch.no_grad():  # the decode of z*'s own x̂₀, once per edit
                        x0 = predict_x0(z0, eps.detach(), alpha)
                        reward = reward.with_reference(decoder(x0).float())
            elif held is None:
                handles = track_points(
                    features,
                    reference,
                    handles,
                    targets,
                    config.tracking_radius,
                    config.dwpt_beta,
                )
            remaining = (targets - handles).norm(dim=-1)
            arrived = bool((remaining < config.reach_distance).all())
            if held is None and (arrived or iteration >= config.max_iterations):
                stop_reason = "reached" if arrived else "max_iterations"
                if not text_phase:
                    history.append(DragStep(iteration, to_image(handles)))
                    break
                held = sample_patches(features.detach(), handles, config.motion_radius)
            if held is not None and text_updates == config.clip_iterations:
                history.append(DragStep(iteration, to_image(handles)))
                break
            if held is None:
                motion = motion_supervision_loss(
                    features, handles, targets, config.motion_radius, config.reach_distance, anchor
                )
                loss, terms = motion, {"motion": motion.item()}
            else:
                hold = config.hold_weight * hold_loss(features, handles, held, config.motion_radius)
                loss, terms = hold, {"hold": hold.item()}
                text_updates += 1
            if use_background:
                prediction = ddim_step(z, eps, alpha, alpha_prev)
                keep = config.background_weight * background_loss(
                    prediction, prediction_ref, region_latent
                )
                loss, terms["background"] = loss + keep, keep.item()
            if config.ppr_weight > 0:
                prior = config.ppr_weight * ppr_loss(
                    z, ppr_reference, ppr_region, config.ppr_mode, alpha
                )
                loss, terms["ppr"] = loss + prior, prior.item()
            rewarded = held is not None or not text_phase
            if config.clip_weight > 0 and rewarded and iteration % config.clip_every == 0:
                score = reward(decoder(predict_x0(z, eps, alpha)).float()).mean()
                loss, terms["clip_reward"] = loss - config.clip_weight * score, score.item()
            step = DragStep(iteration, to_image(handles), loss.item(), terms)
            history.append(step)
            if callback is not None and callback(step, z.detach()):
                stop_reason = "callback"
                break
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            updates += 1
            if config.latent_blending and region_latent is not None:
                with torch.no_grad():
                    z.copy_(z0 + (z - z0) * region_latent)
    logger.debug("drag stopped after %d iterations: %s", len(history), stop_reason)
    return DragResult(
        latent=z.detach().to(inversion.latent.dtype).clone(),
        handles=to_image(handles),
        history=history,
        stop_reason=stop_reason,
        iterations=updates,
        editable=region,
    )
