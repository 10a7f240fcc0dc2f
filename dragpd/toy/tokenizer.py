"""A word-level tokenizer for the toy world's captions (no vocabulary file to fetch)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from .scenes import COLORS, KINDS

__all__ = ["ToyTokenizer"]

_WORDS = (
    "a",
    "an",
    "and",
    "the",
    "of",
    "make",
    "turn",
    "it",
    "photo",
    "shape",
    "shapes",
    *KINDS,
    *COLORS,
)


class ToyTokenizer:
    """Lower-cased words → ids, with ``<bos>``, ``<eos>`` and padding to ``context_length``.

    ``<eos>`` has the largest id, so open_clip's default text pooling (the position of
    the largest id) finds it; unknown words map to ``<unk>``.
    """

    def __init__(self, context_length: int = 16) -> None:
        self.context_length = context_length
        self.vocabulary = ("<pad>", "<unk>", "<bos>", *_WORDS, "<eos>")
        self.ids = {word: i for i, word in enumerate(self.vocabulary)}

    @property
    def vocab_size(self) -> int:
        return len(self.vocabulary)

    def encode(self, text: str) -> list[int]:
        words = text.lower().replace(",", " ").replace(".", " ").split()
        ids = [self.ids.get(w, self.ids["<unk>"]) for w in words]
        ids = [self.ids["<bos>"], *ids[: self.context_length - 2], self.ids["<eos>"]]
        return ids + [self.ids["<pad>"]] * (self.context_length - len(ids))

    def __call__(self, texts: str | Sequence[str]) -> Tensor:
        """``(B, context_length)`` long token ids."""
        if isinstance(texts, str):
            texts = [texts]
        return torch.tensor([self.encode(t) for t in texts], dtype=torch.long)
