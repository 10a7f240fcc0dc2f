"""UNet features for motion supervision and tracking, captured by a forward hook."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["FeatureCapture", "capture_up_block", "resize_features"]


class FeatureCapture:
    """Holds the most recent output of the hooked block (``None`` before a forward)."""

    def __init__(self) -> None:
        self.output: Tensor | None = None

    def __call__(self, module: nn.Module, args: tuple, output: Tensor | tuple) -> None:
        self.output = output[0] if isinstance(output, tuple) else output


@contextmanager
def capture_up_block(unet: nn.Module, block_index: int) -> Iterator[FeatureCapture]:
    """Record the output of ``unet.up_blocks[block_index]`` on every forward.

    The hook is removed when the context exits, whether normally or by an exception.

    Raises:
        ValueError: ``block_index`` does not name an up-block of this UNet.
    """
    blocks = getattr(unet, "up_blocks", None)
    if blocks is None:
        raise ValueError("the model has no up_blocks; pass a diffusers UNet2DConditionModel.")
    if not -len(blocks) <= block_index < len(blocks):
        raise ValueError(
            f"feature_block={block_index} but this UNet has {len(blocks)} up-blocks "
            f"(0 … {len(blocks) - 1}); choose one of those."
        )
    capture = FeatureCapture()
    handle = blocks[block_index].register_forward_hook(capture)
    try:
        yield capture
    finally:
        handle.remove()


def resize_features(features: Tensor, size: tuple[int, int]) -> Tensor:
    """Bilinearly resize ``(B, C, h, w)`` features to ``(B, C, *size)``."""
    if tuple(features.shape[-2:]) == tuple(size):
        return features
    return F.interpolate(features, size=size, mode="bilinear", align_corners=False)
