import itertools

import pytest
import torch

from dragpd import DragConfig, DragPoints, drag, invert
from dragpd.prior import channel_statistics, ppr_loss
from dragpd.tiny import TINY_PRESET, synthetic_latent

REF = torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(0), dtype=torch.float64)


def test_zero_at_the_reference_and_free_to_move_content():
    assert float(ppr_loss(REF.clone(), REF)) == 0.0
    moved = torch.roll(REF, shifts=(3, -5), dims=(2, 3))  # content moved, same distribution
    assert float(ppr_loss(moved, REF)) < 1e-12
    flipped = torch.flip(REF, dims=(3,))
    assert float(ppr_loss(flipped, REF)) < 1e-12


def test_grows_with_drift_in_mean_and_in_spread():
    shifts = [float(ppr_loss(REF + s, REF)) for s in (0.0, 0.1, 0.3, 1.0)]
    spreads = [float(ppr_loss(REF * (1 + s), REF)) for s in (0.0, 0.2, 0.5, 1.0)]
    shrinks = [float(ppr_loss(REF * (1 - s), REF)) for s in (0.0, 0.2, 0.5, 0.9)]
    for values in (shifts, spreads, shrinks):
        assert values[0] == 0.0 and all(a < b for a, b in itertools.pairwise(values))


def test_descent_pulls_the_statistics_back():
    z = (REF * 1.8 + 0.7).float().requires_grad_(True)
    optimizer = torch.optim.Adam([z], lr=0.05)
    start = ppr_loss(z, REF.float()).item()
    for _ in range(100):
        loss = ppr_loss(z, REF.float())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    mean, std = channel_statistics(z.detach())
    mean_ref, std_ref = channel_statistics(REF.float())
    assert ppr_loss(z, REF.float()).item() < 0.01 * start
    assert torch.allclose(mean, mean_ref, atol=0.05) and torch.allclose(std, std_ref, rtol=0.05)


def test_region_pools_only_inside_in_both_latents():
    region = torch.zeros(16, 16)
    region[4:12, 4:12] = 1
    outside = REF.clone()
    outside[..., :2, :] += 5.0  # drift only outside the region
    assert float(ppr_loss(outside, REF, region)) == 0.0
    assert float(ppr_loss(outside, REF)) > 0.1
    with pytest.raises(ValueError, match="region is empty"):
        ppr_loss(REF, REF, torch.zeros(16, 16))


def test_noise_mode_scores_the_implied_noise_against_a_standard_normal():
    generator = torch.Generator().manual_seed(1)
    clean = torch.randn(1, 4, 64, 64, generator=generator, dtype=torch.float64)
    noise = torch.randn(1, 4, 64, 64, generator=generator, dtype=torch.float64)
    alpha = torch.tensor(0.3, dtype=torch.float64)
    on_prior = alpha.sqrt() * clean + (1 - alpha).sqrt() * noise
    off_prior = alpha.sqrt() * clean + (1 - alpha).sqrt() * 2 * noise
    assert float(ppr_loss(on_prior, clean, mode="noise", alpha=alpha)) < 0.01
    assert float(ppr_loss(off_prior, clean, mode="noise", alpha=alpha)) > 0.5
    with pytest.raises(ValueError, match="needs alpha"):
        ppr_loss(on_prior, clean, mode="noise")
    with pytest.raises(ValueError, match="PPR mode must be one of"):
        ppr_loss(on_prior, clean, mode="window")


def test_in_drag_weight_zero_is_the_baseline_and_a_weight_acts(unet):
    latent = synthetic_latent(seed=0)
    cond = torch.randn(1, 7, 32, generator=torch.Generator().manual_seed(0))
    inversion = invert(unet, latent, cond, num_inference_steps=20, strength=0.7)
    points = DragPoints([[38.5, 64.5]], [[84.5, 64.5]], (128, 128))
    config = DragConfig.for_model("sd15", **TINY_PRESET, max_iterations=10, ppr_weight=0.0)
    base = drag(unet, inversion, points, config)
    off = drag(unet, inversion, points, config.replace(ppr_weight=0.0, ppr_mode="noise"))
    on = drag(unet, inversion, points, config.replace(ppr_weight=10.0))
    assert torch.equal(base.latent, off.latent)
    assert "ppr" not in base.history[1].terms and "ppr" in on.history[1].terms
    assert on.history[0].terms["ppr"] == 0.0  # z == z* at the first iteration
    assert not torch.equal(base.latent, on.latent)
    drift = [float(ppr_loss(r.latent, inversion.latent)) for r in (base, on)]
    assert drift[1] < drift[0]  # the term keeps the statistics nearer the prior's
