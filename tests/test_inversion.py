import dataclasses

import pytest
import torch

from dragpd import denoise, invert
from dragpd.inversion import predict_noise
from dragpd.schedule import ddim_step
from dragpd.tiny import synthetic_latent


@pytest.fixture(scope="module")
def scene():
    latent = synthetic_latent(seed=0)
    cond = torch.randn(1, 7, 32, generator=torch.Generator().manual_seed(0))
    return latent, cond


def test_inversion_then_denoising_reproduces_the_latent(unet, scene):
    # Measured on this tiny random UNet (seeds 0-3, latent std ≈ 0.41): 50 steps leave a
    # mean error of 0.03-0.05 and a max of 0.18-0.40; 10 steps 0.10-0.13 and 0.7-1.0.
    latent, cond = scene
    errors = {}
    for steps in (10, 50):
        inversion = invert(unet, latent, cond, num_inference_steps=steps, strength=0.7)
        errors[steps] = (denoise(unet, inversion.latent, inversion, None) - latent).abs()
    assert errors[50].mean() < 0.06 and errors[50].max() < 0.45
    assert errors[50].mean() < 0.5 * errors[10].mean()  # DDIM discretisation error shrinks


def test_inversion_keeps_its_trajectory_and_inputs(unet, scene):
    latent, cond = scene
    latent_copy, cond_copy = latent.clone(), cond.clone()
    inversion = invert(unet, latent, cond, num_inference_steps=20, strength=0.5)
    assert inversion.timesteps == (451, 401, 351, 301, 251, 201, 151, 101, 51, 1)
    assert inversion.timestep == 451
    assert inversion.trajectory.shape == (11, 4, 16, 16)
    assert torch.equal(inversion.trajectory[0], inversion.latent[0])
    assert torch.equal(inversion.trajectory[-1], latent[0])
    assert torch.equal(latent, latent_copy) and torch.equal(cond, cond_copy)


def test_reference_branch_is_aligned_with_the_denoising_steps(unet, scene):
    # Give the inversion, as its "trajectory", the exact path that plain denoising of z*
    # takes: then the reference half equals the edited half at every step, and mutual
    # self-attention must change nothing. A trajectory read one step off would.
    latent, cond = scene
    inversion = invert(unet, latent, cond, num_inference_steps=10, strength=0.7)
    path, z = [inversion.latent], inversion.latent
    for t in inversion.timesteps:
        eps = predict_noise(unet, z, t, cond)
        z = ddim_step(z, eps, inversion.alpha(t), inversion.previous_alpha(t))
        path.append(z)
    aligned = dataclasses.replace(inversion, trajectory=torch.cat(path))
    plain = denoise(unet, inversion.latent, aligned, None)
    shared = denoise(unet, inversion.latent, aligned, mutual_attention_start=0)
    assert torch.allclose(plain, path[-1], atol=1e-6)
    assert torch.allclose(plain, shared, atol=1e-5)
    shifted = dataclasses.replace(inversion, trajectory=torch.cat(path[1:] + path[-1:]))
    assert (denoise(unet, inversion.latent, shifted, 0) - plain).abs().max() > 1e-3


def test_a_batch_is_refused_with_advice(unet):
    with pytest.raises(ValueError, match="Split a batch into single images"):
        invert(unet, torch.zeros(2, 4, 16, 16), torch.zeros(1, 7, 32))
