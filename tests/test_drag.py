import dataclasses

import pytest
import torch
import torch.nn.functional as F

from dragpd import DragConfig, DragPoints, drag, invert
from dragpd.tiny import TINY_PRESET, synthetic_latent, tiny_unet

IMAGE = 128  # a 16×16 latent is a 128×128 image; the supervision grid is 64×64


@pytest.fixture(scope="module")
def inversion(unet):
    latent = synthetic_latent(seed=0)
    cond = torch.randn(1, 7, 32, generator=torch.Generator().manual_seed(0))
    return invert(unet, latent, cond, num_inference_steps=50, strength=0.7)


def config(**changes) -> DragConfig:
    # Random weights: the loop's mechanics without the anchor and PPR, whose defaults were
    # chosen on the trained toy model (tests/test_toy_behaviour.py covers those).
    base = {**TINY_PRESET, "anchor_original_features": False, "ppr_weight": 0.0}
    return DragConfig.for_model("sd15", **{**base, **changes})


# The blob of synthetic_latent sits at latent (4.8, 8) → image (≈ 38.9, 64.5).
POINTS = DragPoints([[38.5, 64.5]], [[84.5, 64.5]], (IMAGE, IMAGE))


def distance_to_target(handles: torch.Tensor, points: DragPoints = POINTS) -> float:
    return float((points.targets - handles).norm(dim=-1).max())


@pytest.mark.parametrize("beta", [0.0, 0.3])
def test_handles_travel_toward_their_targets(unet, inversion, beta):
    result = drag(unet, inversion, POINTS, config(dwpt_beta=beta, max_iterations=60))
    start = distance_to_target(result.history[0].handles)
    assert start == pytest.approx(46.0, abs=1.0)
    # Measured: both tracking modes end within ~3 px after 60-72 of at most 80 updates.
    assert distance_to_target(result.handles) < 0.5 * start
    assert result.iterations == len([s for s in result.history if s.loss is not None])
    assert result.latent.shape == inversion.latent.shape
    assert not result.latent.requires_grad


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_half_precision_autocast_drags_like_float32(unet, inversion, dtype):
    # What the ComfyUI bridge asks for on a GPU (float16 with loss scaling); here on the CPU.
    full = drag(unet, inversion, POINTS, config(max_iterations=20))
    half = drag(unet, inversion, POINTS, config(max_iterations=20, autocast_dtype=dtype))
    assert half.latent.dtype == full.latent.dtype and torch.isfinite(half.latent).all()
    assert half.iterations == full.iterations
    start = distance_to_target(full.history[0].handles)
    assert distance_to_target(half.handles) < start - 5  # it moved, like float32 does
    assert distance_to_target(full.handles) < start - 5


def test_nothing_passed_in_is_modified(unet, inversion):
    before = [
        inversion.latent.clone(),
        inversion.conditioning.clone(),
        inversion.trajectory.clone(),
        POINTS.handles.clone(),
        POINTS.targets.clone(),
    ]
    weights = {k: v.clone() for k, v in unet.state_dict().items()}
    flags = [p.requires_grad for p in unet.parameters()]
    drag(unet, inversion, POINTS, config(max_iterations=5))
    after = [
        inversion.latent,
        inversion.conditioning,
        inversion.trajectory,
        POINTS.handles,
        POINTS.targets,
    ]
    assert all(torch.equal(a, b) for a, b in zip(before, after, strict=True))
    assert all(torch.equal(weights[k], v) for k, v in unet.state_dict().items())
    assert [p.requires_grad for p in unet.parameters()] == flags
    assert all(not block._forward_hooks for block in unet.up_blocks)
    assert all(p.grad is None for p in unet.parameters())


def test_callback_sees_every_iteration_and_can_stop(unet, inversion):
    seen = []

    def callback(step, latent):
        seen.append((step.iteration, step.handles.shape, latent.shape, step.loss))
        return step.iteration == 3

    result = drag(unet, inversion, POINTS, config(), callback=callback)
    assert result.stop_reason == "callback"
    assert [s[0] for s in seen] == [0, 1, 2, 3]
    assert all(
        shape == (1, 2) and lat == (1, 4, 16, 16) and loss > 0 for _, shape, lat, loss in seen
    )
    assert result.iterations == 3 and len(result.history) == 4


def test_callback_exceptions_propagate_and_leave_nothing_behind(unet, inversion):
    class Interrupted(Exception):
        pass

    def callback(step, latent):
        raise Interrupted

    flags = [p.requires_grad for p in unet.parameters()]
    with pytest.raises(Interrupted):
        drag(unet, inversion, POINTS, config(), callback=callback)
    assert [p.requires_grad for p in unet.parameters()] == flags
    assert all(not block._forward_hooks for block in unet.up_blocks)


def test_runs_inside_inference_mode_like_a_comfyui_node():
    # ComfyUI calls nodes under torch.inference_mode(); the UNet it converts is built
    # outside it, but the latent, conditioning and inversion come from inside.
    unet = tiny_unet(seed=1)
    with torch.inference_mode():
        latent = synthetic_latent(seed=1)
        cond = torch.randn(1, 7, 32)
        inversion = invert(unet, latent, cond, num_inference_steps=20, strength=0.7)
        assert inversion.latent.is_inference()
        result = drag(unet, inversion, POINTS, config(max_iterations=8))
    assert result.iterations == 8
    assert not torch.equal(result.latent, inversion.latent)


def test_inference_mode_weights_are_refused_with_advice(inversion):
    with torch.inference_mode():
        unet = tiny_unet(seed=2)
    with pytest.raises(ValueError, match=r"inference tensors .*inference_mode\(False\)"):
        drag(unet, inversion, POINTS, config())


def test_latent_outside_the_region_is_kept_with_blending(unet, inversion):
    result = drag(unet, inversion, POINTS, config(max_iterations=10, latent_blending=True))
    region = result.editable
    assert region is not None and 0.05 < float(region.float().mean()) < 0.5
    cells = F.interpolate(region[None, None].float(), size=(16, 16), mode="area")[0, 0] > 0
    change = (result.latent - inversion.latent)[0].abs().sum(0)
    assert float(change[~cells].max()) == 0.0
    assert float(change[cells].max()) > 1e-3


def test_user_mask_overrides_the_default_region(unet, inversion):
    mask = torch.zeros(IMAGE, IMAGE, dtype=torch.bool)
    mask[32:96, 16:112] = True
    result = drag(unet, inversion, POINTS, config(max_iterations=2), mask=mask)
    assert torch.equal(result.editable, mask)
    with pytest.raises(ValueError, match=r"mask has shape \(64, 64\)"):
        drag(unet, inversion, POINTS, config(), mask=torch.ones(64, 64))


@pytest.mark.parametrize(
    ("changes", "points", "message"),
    [
        ({"feature_block": 5}, POINTS, "feature_block=5 but this UNet has 3 up-blocks"),
        ({}, DragPoints([[1.0, 1.0]], [[9.0, 9.0]], (128, 64)), "different aspect ratio"),
    ],
)
def test_bad_inputs_are_refused_with_advice(unet, inversion, changes, points, message):
    with pytest.raises(ValueError, match=message):
        drag(unet, inversion, points, config(**changes))


def test_bad_config_values_are_refused():
    with pytest.raises(ValueError, match="dwpt_beta must be >= 0"):
        DragConfig(dwpt_beta=-1)
    with pytest.raises(ValueError, match="no preset for model 'sdxl'"):
        DragConfig.for_model("sdxl")


def test_dragdiffusion_preset_turns_every_addition_off():
    base = DragConfig.dragdiffusion()
    assert (base.dwpt_beta, base.default_region, base.latent_blending) == (0.0, False, False)
    assert not base.anchor_original_features
    assert (base.num_inference_steps, base.inversion_strength, base.lr) == (50, 0.7, 0.01)
    assert (base.motion_radius, base.tracking_radius, base.max_iterations) == (1, 3, 80)
    assert (base.background_weight, base.feature_block, base.mutual_attention_start) == (0.1, 2, 10)
    assert DragConfig().dwpt_beta > 0


# --- DragDiffusion's loop, written out independently in its own (row, col) style -------


def dragdiffusion_reference(
    unet,
    inversion,
    handles_rc,
    targets_rc,
    mask_latent,
    iterations,
    block=1,
    size=(64, 64),
    lr=0.01,
    lam=0.1,
    r_m=1,
    r_p=3,
):
    t = inversion.timestep
    a, a_prev = inversion.alpha(t).float(), inversion.previous_alpha(t).float()
    cond = inversion.conditioning
    store = {}
    hook = unet.up_blocks[block].register_forward_hook(lambda m, i, o: store.update(f=o))

    def forward(z):
        eps = unet(z, t, encoder_hidden_states=cond).sample
        feats = F.interpolate(store["f"], size, mode="bilinear")
        return eps, feats

    def step(z, eps):
        x0 = (z - (1 - a).sqrt() * eps) / a.sqrt()
        return a_prev.sqrt() * x0 + (1 - a_prev).sqrt() * eps

    def patch(feats, y, x, r):  # bilinear, by hand
        y0, x0 = int(y // 1), int(x // 1)
        wy, wx = y - y0, x - x0

        def sl(yy, xx):
            return feats[:, :, yy - r : yy + r + 1, xx - r : xx + r + 1]

        return (
            (1 - wy) * (1 - wx) * sl(y0, x0)
            + (1 - wy) * wx * sl(y0, x0 + 1)
            + wy * (1 - wx) * sl(y0 + 1, x0)
            + wy * wx * sl(y0 + 1, x0 + 1)
        )

    try:
        for p in unet.parameters():
            p.requires_grad_(False)
        z0 = inversion.latent.clone()
        with torch.no_grad():
            eps0, f0 = forward(z0)
            prev0 = step(z0, eps0)
        z = z0.clone().requires_grad_(True)
        opt = torch.optim.Adam([z], lr=lr)
        handles = [h.clone() for h in handles_rc]
        visited = []
        for it in range(iterations):
            eps, f1 = forward(z)
            prev = step(z, eps)
            if it != 0:
                for i, h in enumerate(handles):
                    r0, c0 = handles_rc[i].long().tolist()
                    ref = f0[0, :, r0, c0]
                    hr, hc = h.long().tolist()
                    top, left = max(hr - r_p, 0), max(hc - r_p, 0)
                    win = f1[0, :, top : hr + r_p + 1, left : hc + r_p + 1].detach()
                    dist = (win - ref[:, None, None]).abs().sum(0)
                    row, col = divmod(int(dist.argmin()), dist.shape[1])
                    handles[i] = torch.tensor([top + row, left + col], dtype=torch.float64)
            visited.append([h.tolist() for h in handles])
            if all(float((g - h).norm()) < 2.0 for h, g in zip(handles, targets_rc, strict=True)):
                break
            loss = 0.0
            for h, g in zip(handles, targets_rc, strict=True):
                if float((g - h).norm()) < 2.0:
                    continue
                d = (g - h) / (g - h).norm()
                hr, hc = int(h[0]), int(h[1])
                still = f1[:, :, hr - r_m : hr + r_m + 1, hc - r_m : hc + r_m + 1].detach()
                ahead = patch(f1, float(h[0] + d[0]), float(h[1] + d[1]), r_m)
                loss = loss + (2 * r_m + 1) ** 2 * F.l1_loss(still, ahead)
            loss = loss + lam * ((prev - prev0) * (1.0 - mask_latent)).abs().sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
        return z.detach(), visited
    finally:
        hook.remove()
        for p in unet.parameters():
            p.requires_grad_(True)


def test_baseline_preset_reproduces_dragdiffusions_loop(inversion):
    unet = tiny_unet(seed=0)
    # Points at x = 2k + 0.5 sit on cell centres of the 64² grid under both DragDiffusion's
    # (x · ½) and our pixel-centre ((x + ½) · ½ − ½) scalings, so the two loops start equal.
    points = DragPoints([[38.5, 64.5], [90.5, 30.5]], [[84.5, 64.5], [90.5, 60.5]], (IMAGE, IMAGE))
    mask = torch.zeros(IMAGE, IMAGE, dtype=torch.bool)
    mask[16:104, 24:112] = True  # aligned with the 8-px latent cells
    points = dataclasses.replace(points, mask=mask)
    mask_latent = mask[::8, ::8].float()[None, None]
    handles_rc = [
        torch.tensor([64.5 / 2, 38.5 / 2]).floor().double(),
        torch.tensor([30.5 / 2, 90.5 / 2]).floor().double(),
    ]
    targets_rc = [torch.tensor([32.0, 42.0]).double(), torch.tensor([30.0, 45.0]).double()]
    iterations = 12
    ours = drag(
        unet, inversion, points, DragConfig.dragdiffusion(**TINY_PRESET, max_iterations=iterations)
    )
    theirs, visited = dragdiffusion_reference(
        unet, inversion, handles_rc, targets_rc, mask_latent, iterations
    )
    ours_rc = [
        [[(y + 0.5) / 2 - 0.5, (x + 0.5) / 2 - 0.5] for x, y in s.handles.tolist()]
        for s in ours.history
    ]
    assert ours_rc == visited
    assert len({tuple(map(tuple, v)) for v in visited}) > 2  # the handles did move
    assert torch.allclose(ours.latent, theirs, atol=1e-4)
