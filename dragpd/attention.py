"""Mutual self-attention (MasaCtrl, Cao et al. 2023) for the final denoise of a drag edit.

The UNet runs on a batch ``[reference, edited]`` (first half, second half). In the chosen
self-attention layers both halves take their keys and values from the reference half,
so the edited image keeps the reference's appearance and identity. It is done with a
forward pre-hook on each self-attention module that passes the reference hidden states
as ``encoder_hidden_states`` — the module's own projections then read them; nothing of
the UNet's forward is copied.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

__all__ = ["mutual_self_attention", "self_attention_layers"]


def self_attention_layers(unet: nn.Module) -> list[nn.Module]:
    """The self-attention modules (``attn1`` of each transformer block) in execution order.

    Down blocks, then the mid block, then up blocks; SD1.5 has 16 (6 + 1 + 9), so
    DragDiffusion's ``start_layer=10`` is the last six, in the two finest up-blocks.
    """
    blocks: list[nn.Module] = [*getattr(unet, "down_blocks", [])]
    if getattr(unet, "mid_block", None) is not None:
        blocks.append(unet.mid_block)
    blocks.extend(getattr(unet, "up_blocks", []))
    layers = []
    for block in blocks:
        for module in block.modules():
            attn1 = getattr(module, "attn1", None)
            if isinstance(attn1, nn.Module) and attn1 not in layers:
                layers.append(attn1)
    return layers


def _share_reference_keys(module: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
    hidden = args[0] if args else kwargs["hidden_states"]
    if hidden.shape[0] % 2:
        raise ValueError(
            "mutual self-attention needs a batch of [reference, edited] pairs; got an odd "
            f"batch of {hidden.shape[0]}."
        )
    reference = hidden[: hidden.shape[0] // 2]
    kwargs = dict(kwargs)
    kwargs["encoder_hidden_states"] = torch.cat([reference, reference], dim=0)
    return args, kwargs


@contextmanager
def mutual_self_attention(unet: nn.Module, start_layer: int) -> Iterator[int]:
    """Within the context, self-attention layers ``start_layer`` onward share the reference's K/V.

    Yields:
        The number of layers affected (0 when ``start_layer`` is past the last one).
    The hooks are removed on exit, normally or by an exception.
    """
    layers = self_attention_layers(unet)[start_layer:]
    handles = [
        layer.register_forward_pre_hook(_share_reference_keys, with_kwargs=True) for layer in layers
    ]
    try:
        yield len(layers)
    finally:
        for handle in handles:
            handle.remove()
