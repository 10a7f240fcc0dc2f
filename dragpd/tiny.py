"""Tiny seeded diffusers components: for tests, benchmarks and the plumbing demo.

Random weights prove plumbing, not editing; the trained toy world lives in
:mod:`dragpd.toy` (its own issue). The UNet mirrors SD1.5's layout at a fraction of the
width: three down-blocks (two with cross-attention), so ``up_blocks[1]`` is the
latent-resolution feature block, as ``up_blocks[2]`` is in SD1.5.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from torch import Tensor, nn

__all__ = ["TINY_PRESET", "synthetic_latent", "tiny_open_clip", "tiny_unet", "tiny_vae"]


@contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """Seed torch for building a model, then put the global RNG back as it was."""
    state = torch.random.get_rng_state()
    try:
        torch.manual_seed(seed)
        yield
    finally:
        torch.random.set_rng_state(state)


# Model-dependent DragConfig knobs for :func:`tiny_unet` (see ``DragConfig.for_model``).
TINY_PRESET = {"feature_block": 1, "mutual_attention_start": 3}


def tiny_unet(seed: int = 0, cross_attention_dim: int = 32) -> UNet2DConditionModel:
    """A ~0.3 M-parameter ``UNet2DConditionModel`` with seeded random weights.

    Latents ``(B, 4, h, w)`` with h, w multiples of 4; conditioning ``(B, L, 32)``.
    It has 7 self-attention layers (2 down, 1 mid, 4 up); its preset shares the up-blocks'.
    """
    with _seeded(seed):
        unet = UNet2DConditionModel(
            sample_size=16,
            in_channels=4,
            out_channels=4,
            block_out_channels=(16, 32, 32),
            layers_per_block=1,
            down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
            cross_attention_dim=cross_attention_dim,
            attention_head_dim=8,
            norm_num_groups=8,
        )
    return unet.eval()


def tiny_vae(seed: int = 0) -> AutoencoderKL:
    """A seeded random ``AutoencoderKL`` with SD's 8× downsampling and 4 latent channels."""
    with _seeded(seed):
        vae = AutoencoderKL(
            in_channels=3,
            out_channels=3,
            latent_channels=4,
            block_out_channels=(8, 8, 16, 16),
            down_block_types=("DownEncoderBlock2D",) * 4,
            up_block_types=("UpDecoderBlock2D",) * 4,
            layers_per_block=1,
            norm_num_groups=8,
            sample_size=128,
        )
    return vae.eval()


def tiny_open_clip(seed: int = 0) -> tuple[nn.Module, Callable[[Sequence[str]], Tensor]]:
    """A seeded random open_clip ``CLIP`` (32² images, 32-d embeddings) and a tokenizer."""
    import open_clip

    with _seeded(seed):
        model = open_clip.CLIP(
            embed_dim=32,
            vision_cfg={
                "image_size": 32,
                "layers": 1,
                "width": 32,
                "patch_size": 8,
                "head_width": 16,
            },
            text_cfg={
                "context_length": 16,
                "vocab_size": 49408,
                "width": 32,
                "heads": 2,
                "layers": 1,
            },
        )
    return model.eval(), open_clip.get_tokenizer("ViT-B-32", context_length=16)


def synthetic_latent(size: int = 16, seed: int = 0) -> torch.Tensor:
    """``(1, 4, size, size)``: mild noise plus a bright blob left of centre."""
    generator = torch.Generator().manual_seed(seed)
    latent = 0.3 * torch.randn(1, 4, size, size, generator=generator)
    ys, xs = torch.meshgrid(
        torch.arange(size, dtype=torch.float32),
        torch.arange(size, dtype=torch.float32),
        indexing="ij",
    )
    return latent + 2.0 * torch.exp(-((xs - size * 0.3) ** 2 + (ys - size * 0.5) ** 2) / 3.0)
