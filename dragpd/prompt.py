"""SD1.x prompts → the UNet's text conditioning, with the CLIP BPE vocabulary open_clip ships.

SD1.5's ``CLIPTokenizer`` and open_clip's ``SimpleTokenizer`` share OpenAI's BPE
vocabulary and give the same ids for ordinary text; they differ only in padding
(``CLIPTokenizer`` pads with ``<|endoftext|>``, open_clip with 0). :func:`clip_token_ids`
reproduces ``CLIPTokenizer(padding="max_length", max_length=77, truncation=True)``, so
no tokenizer file has to be fetched from a hub.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import torch
from torch import Tensor, nn

__all__ = ["CONTEXT_LENGTH", "BpeTokenizer", "clip_token_ids", "prompt_encoder"]

CONTEXT_LENGTH = 77  # SD1.x text encoder's positions: BOS, up to 75 BPE tokens, EOS


class BpeTokenizer(Protocol):
    """What :func:`clip_token_ids` needs: open_clip's ``SimpleTokenizer`` has it."""

    sot_token_id: int  # <|startoftext|>, 49406
    eot_token_id: int  # <|endoftext|>, 49407

    def encode(self, text: str) -> list[int]: ...


def clip_token_ids(
    text: str, tokenizer: BpeTokenizer, context_length: int = CONTEXT_LENGTH
) -> Tensor:
    """Text → ``(1, context_length)`` long token ids, as SD1.5's ``CLIPTokenizer`` gives them.

    Args:
        text: the prompt; cleaned and lower-cased by the tokenizer.
        tokenizer: open_clip's ``SimpleTokenizer()`` (its packaged BPE vocabulary).
        context_length: 77 for SD1.x.

    Returns:
        ``[BOS, t_1, …, t_n, EOS, EOS, …]``: the text truncated to ``context_length − 2``
        tokens so that EOS is always there, then padded with EOS.
    """
    body = tokenizer.encode(text)[: context_length - 2]
    ids = [tokenizer.sot_token_id, *body, tokenizer.eot_token_id]
    ids += [tokenizer.eot_token_id] * (context_length - len(ids))
    return torch.tensor([ids], dtype=torch.long)


def prompt_encoder(text_encoder: nn.Module, tokenizer: BpeTokenizer) -> Callable[[str], Tensor]:
    """Build ``encode_prompt``: text → ``(1, 77, D)`` SD1.x conditioning.

    Args:
        text_encoder: a transformers ``CLIPTextModel``; SD1.x conditions on its
            ``last_hidden_state`` (the final layer, after the final layer norm).
        tokenizer: see :func:`clip_token_ids`.

    Returns:
        A function of one prompt. Its result is a constant of the edit: computed without
        gradients, and outside inference mode so autograd may use it later (the drag
        loop and the LoRA differentiate through the UNet it conditions). On the text
        encoder's device and dtype.
    """

    def encode_prompt(text: str) -> Tensor:
        device = next(text_encoder.parameters()).device
        ids = clip_token_ids(text, tokenizer).to(device)
        with torch.inference_mode(False), torch.no_grad():
            return text_encoder(ids).last_hidden_state

    return encode_prompt
