import pytest
import torch
from diffusers import DDIMScheduler

from dragpd.schedule import (
    ddim_step,
    ddim_timesteps,
    predict_x0,
    previous_alpha,
    stable_diffusion_alphas,
)


def dragdiffusion_scheduler() -> DDIMScheduler:
    return DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
    )


def test_alphas_match_diffusers_scaled_linear():
    ours = stable_diffusion_alphas()
    theirs = dragdiffusion_scheduler().alphas_cumprod.double()
    assert ours.shape == (1000,)
    assert torch.allclose(ours, theirs, rtol=1e-6, atol=0)


def test_timesteps_are_the_tail_of_diffusers_ddim_schedule():
    scheduler = dragdiffusion_scheduler()
    scheduler.set_timesteps(50)
    ours = ddim_timesteps(50, 0.7)
    assert len(ours) == 35
    assert ours[0] == 681 and ours[-1] == 1
    assert ours == scheduler.timesteps[15:].tolist()


def test_denoising_step_equals_diffusers_ddim_step():
    scheduler = dragdiffusion_scheduler()
    scheduler.set_timesteps(50)
    alphas = stable_diffusion_alphas()
    generator = torch.Generator().manual_seed(0)
    z = torch.randn(1, 4, 8, 8, generator=generator, dtype=torch.float64)
    for t in (681, 21, 1):
        eps = torch.randn(z.shape, generator=generator, dtype=torch.float64)
        theirs = scheduler.step(eps, t, z, eta=0.0).prev_sample
        ours = ddim_step(z, eps, alphas[t], previous_alpha(alphas, t, 20))
        assert torch.allclose(ours, theirs, atol=1e-5), t


def test_inversion_step_undoes_denoising_step_for_a_fixed_prediction():
    alphas = stable_diffusion_alphas()
    generator = torch.Generator().manual_seed(1)
    z = torch.randn(2, 4, 8, 8, generator=generator, dtype=torch.float64)
    eps = torch.randn(z.shape, generator=generator, dtype=torch.float64)
    up = ddim_step(z, eps, alphas[461], alphas[481])
    assert not torch.allclose(up, z)
    assert torch.allclose(ddim_step(up, eps, alphas[481], alphas[461]), z, atol=1e-12)
    x0 = predict_x0(z, eps, alphas[481])
    assert torch.allclose(alphas[481].sqrt() * x0 + (1 - alphas[481]).sqrt() * eps, z)


def test_previous_alpha_below_zero_is_alpha_zero():
    alphas = stable_diffusion_alphas()
    assert previous_alpha(alphas, 1, 20) == alphas[0]
    assert previous_alpha(alphas, 21, 20) == alphas[1]


@pytest.mark.parametrize(
    ("steps", "strength", "message"),
    [
        (0, 0.7, "num_steps must be at least 1"),
        (50, 0.0, "strength must be in"),
        (50, 1.2, "strength must be in"),
        (10, 0.04, "keeps no step"),
    ],
)
def test_bad_schedule_arguments(steps, strength, message):
    with pytest.raises(ValueError, match=message):
        ddim_timesteps(steps, strength)
