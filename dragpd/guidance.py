"""Declarative guidance terms: what the PPR Loss and CLIP Reward nodes pass downstream.

A guidance is a tuple of frozen term specs with no modules or tensors inside; each maps
1:1 onto :class:`~dragpd.config.DragConfig` fields. Nodes append their term to the tuple
they received, so they chain.
"""

from __future__ import annotations

from dataclasses import dataclass

from .config import TEXT_EDIT_CLIP_WEIGHT, DragConfig

__all__ = ["ClipTerm", "Guidance", "PriorTerm", "apply_guidance"]


@dataclass(frozen=True)
class PriorTerm:
    """PPR: ``weight`` · KL of latent statistics (see :func:`dragpd.prior.ppr_loss`)."""

    weight: float
    mode: str = "reference"  # "reference" | "noise"
    window: str = "global"  # "global" | "region"


@dataclass(frozen=True)
class ClipTerm:
    """CLIP reward toward ``text`` (directional from ``source_text`` when given)."""

    weights_file: str
    architecture: str
    text: str
    source_text: str | None = None
    weight: float = TEXT_EDIT_CLIP_WEIGHT
    every: int = 1
    iterations: int = 20  # the text-edit phase after the drag (0: the reward acts during it)


Guidance = tuple[PriorTerm | ClipTerm, ...]


def apply_guidance(
    config: DragConfig, guidance: Guidance | None
) -> tuple[DragConfig, ClipTerm | None]:
    """Fold the terms into ``config``; return it and the CLIP term to load, if any.

    PPR terms of the same mode and window add their weights; two CLIP terms, or PPR
    terms that disagree on mode or window, are refused (the loop has one of each).
    """
    prior: PriorTerm | None = None
    clip: ClipTerm | None = None
    for term in guidance or ():
        if isinstance(term, PriorTerm):
            if prior is not None and (prior.mode, prior.window) != (term.mode, term.window):
                raise ValueError(
                    "two PPR Loss terms with different mode or window; chain one PPR Loss, "
                    "or give both the same mode and window."
                )
            weight = term.weight + (prior.weight if prior else 0.0)
            prior = PriorTerm(weight, term.mode, term.window)
        elif isinstance(term, ClipTerm):
            if clip is not None:
                raise ValueError("two CLIP Reward terms; chain at most one CLIP Reward.")
            clip = term
        else:
            raise ValueError(f"unknown guidance term {term!r}; expected PriorTerm or ClipTerm.")
    changes = {}
    if prior is not None:
        changes |= {"ppr_weight": prior.weight, "ppr_mode": prior.mode, "ppr_window": prior.window}
    if clip is not None:
        changes |= {
            "clip_weight": clip.weight,
            "clip_every": clip.every,
            "clip_iterations": clip.iterations,
        }
    return (config.replace(**changes) if changes else config), clip
