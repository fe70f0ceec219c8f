"""Folding guidance into a guidance-free model: which reference its β input replaces, and β = 1/s.

A guidance-free model (GFT, Chen et al., arXiv 2501.15420; guidance distillation, Meng et al.,
arXiv 2210.03142) returns the CFG prediction at scale s in one forward when handed β = 1/s.
It learned that line against its own ∅, so it can stand in for a reference only where that
reference is plain CFG on ∅: the call has one condition and no negative, and no post-process
reads the conditional prediction (the folded call gives none). Elsewhere the reference runs as
for any model, at β = 1. The guided model (:class:`~.engine.GuidedModel`, per call) and
autoregressive decoding (per token) decide with the same function.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor

from ..core.checks import reads_back
from .rules import CFG
from .spec import Guidance


def folded_reference(
    guidance: Guidance, *, guidance_input: bool, on_null: bool, one_condition: bool, idle: Sequence[bool]
) -> int | None:
    """The index of the reference a guidance-free model takes as its input β instead of running it.

    Args:
        guidance: the guidance of the call.
        guidance_input: whether the model takes β (:attr:`~unified_guidance.core.ConditionalModel.guidance_input`).
        on_null: whether a reference with source ``None`` would run on the model's ∅ (no negative
            condition or prompt stands in for it, and the call's condition is not ∅ itself).
        one_condition: whether the call has a single condition (no composition).
        idle: ``idle[j]``: reference j is not run at this call (scale 1, or its rule outputs zero).

    Returns the first reference on ∅ with plain :class:`~.rules.CFG` that is not idle, or ``None``.
    """
    if not (guidance_input and on_null and one_condition):
        return None
    if any(p.reads_cond for p in guidance.post):
        return None
    for j, r in enumerate(guidance.references):
        if r.source is None and type(r.rule) is CFG and not idle[j]:
            return j
    return None


def strength(scale: Tensor) -> Tensor:
    """β = 1/w for a folded reference at scale w ≥ 1, any shape (a scale below 1 is refused naming ``scale``)."""
    if reads_back() and not bool((scale >= 1.0).all()):
        raise ValueError(
            "scale: a guidance-free model takes its guidance as β = 1/s, so its CFG scale must be ≥ 1, "
            f"got {float(scale.min()):g}"
        )
    return 1.0 / scale
