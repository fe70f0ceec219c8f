"""References that act inside the conditional forward: normalized attention guidance (NAG).

``Reference(nag(...), w)`` (a :class:`~.spec.PerturbedReference` of a
:class:`~unified_guidance.perturb.spec.NormalizedAttention`) runs no rows of its own: the conditional
forward runs with NAG in the selected cross-attentions at the scale w(τ) of the call, so the
guided call stays one forward of B rows, and the reference adds nothing to ĝ = c + Σ(g_j − c)
(g_j = c). Perturbed references on the same condition (PAG, SEG, SLG) are the perturbed copy of
that forward, so NAG acts in their rows too; ∅ and negative rows run without it.

The negative context is the call's negative condition (``Conditions(..., negative=...)``), else ∅.
Where the guidance has a NAG reference the negative belongs to it: references on ∅ then read ∅,
so ``Guidance(scale=s, also=[Reference(nag(...), w)])`` is CFG against ∅ plus NAG against the
negative prompt.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from torch import Tensor

from ..core.conditions import Cond, Conditions, take_rows
from ..core.model import ConditionalModel
from ..perturb.hooks import Rows
from ..perturb.nag_hooks import NagSpan
from ..perturb.spec import NormalizedAttention
from .branches import Branch
from .rules import CFG
from .spec import PerturbedReference, Reference


def acts_inside(ref: Reference) -> bool:
    """Whether ``ref`` acts inside the conditional forward (NAG) rather than running rows."""
    return isinstance(ref.source, PerturbedReference) and isinstance(ref.source.perturbation, NormalizedAttention)


def check_inside(refs: Sequence[Reference]) -> None:
    """A NAG reference takes CFG's rule (unused: g_j = c) and the conditional branch's condition."""
    for ref in refs:
        if not acts_inside(ref):
            continue
        assert isinstance(ref.source, PerturbedReference)
        if type(ref.rule) is not CFG:
            raise ValueError(
                f"rule: a NAG reference acts inside the conditional forward and combines nothing; "
                f"give it the default rule, got {type(ref.rule).__name__}"
            )
        if ref.source.condition != "same":
            raise ValueError(
                "condition: NAG guides the conditional forward (condition='same'); "
                f"got {ref.source.condition!r}; its negative context is the call's negative condition, else ∅"
            )


def inside_spans(
    model: ConditionalModel,
    refs: Sequence[Reference],
    scales: Sequence[Tensor],
    idle: Sequence[bool],
    cond: object,
    spec: Conditions,
    x: Tensor,
) -> tuple[tuple[NagSpan, ...], Conditions]:
    """The NAG spans of this call (over ``Rows.all(batch)``) and the call's conditions with the
    negative taken by them. None where the call asked for ∅ itself or a reference's scale is 1."""
    if not any(acts_inside(r) for r in refs):
        return (), spec
    batch = x.shape[0]
    negative: Cond = spec.negative if spec.negative is not None else model.null_condition(batch, device=x.device)
    spans = []
    for j, r in enumerate(refs):
        pert = r.source.perturbation if isinstance(r.source, PerturbedReference) else None
        if isinstance(pert, NormalizedAttention) and not idle[j] and cond is not None:
            spans.append(NagSpan(pert, Rows.all(batch), scales[j], negative))
    return tuple(spans), Conditions(spec.conds, spec.weights)


def carry_inside(branch: Branch, spans: tuple[NagSpan, ...], subset: Tensor | None) -> Branch:
    """``branch`` (a perturbed reference on the conditional rows, or the samples ``subset`` of them)
    with the call's NAG acting in its forward too."""
    if not spans or subset is None:
        return replace(branch, nag=spans)
    picked = tuple(
        replace(
            s,
            rows=Rows.all(subset.shape[0]),
            scale=s.scale.index_select(0, subset) if isinstance(s.scale, Tensor) and s.scale.ndim else s.scale,
            negative=take_rows(s.negative, subset),
        )
        for s in spans
    )
    return replace(branch, nag=picked)
