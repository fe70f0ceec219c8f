"""The branches of one guided call: which rows run for its conditions and its references, and their predictions.

The conditional rows of every condition come first; each reference to run adds its rows
(:func:`~.branches.reference_branch`) once per distinct source and subset of samples, with the
folded strength β and the NAG spans carried where it takes the call's condition. The branches
of the guided model run as one stacked forward, another model's (autoguidance) as its own
(:func:`~.branches.run_branches`).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from torch import Tensor

from ..core.conditions import Conditions
from ..core.model import ConditionalModel
from ..perturb.hooks import Selections
from .branches import Branch, reference_branch, run_branches
from .inside import carry_inside
from .spec import ModelReference, PerturbedReference, Reference

NULL = "null"
"""The key of ∅'s prediction when a composition needs it and no running reference is ∅."""


def call_predictions(
    model: ConditionalModel,
    refs: tuple[Reference, ...] | list[Reference],
    x: Tensor,
    t: Tensor,
    spec: Conditions,
    subsets: dict[int, Tensor | None],
    *,
    beta: Tensor | None = None,
    nag: tuple = (),
    stacked: bool = True,
    cache: Selections | None = None,
) -> tuple[list[Tensor], dict[Any, Tensor]]:
    """The conditional predictions (one per condition) and the predictions of the references ``j`` in
    ``subsets`` (and of ∅, keyed :data:`NULL`, for a composition of conditions).

    ``subsets[j]`` ``(k,)``: run reference j for these samples only (``None``: all); the others get the
    first conditional prediction in its place (a rule that stopped guiding them ignores it). ``beta``
    ``(B,)``: the folded strength, and ``nag``: the NAG spans (:mod:`.inside`), both handed with the
    conditional rows and with the perturbed references that take the same condition. ``stacked``: the
    model's own branches as one forward; ``cache``: the modules each perturbation acts on.
    """
    own = [Branch(x, t, c, beta=beta, nag=nag) for c in spec.conds]
    slots: dict[Any, tuple[str, int]] = {}  # equal sources over equal rows run once
    others: list[tuple[ConditionalModel, Branch]] = []
    wanted: list[tuple[int | str, Any, Tensor | None]] = [(j, refs[j].source, s) for j, s in subsets.items()]
    if not spec.is_single:
        wanted.append((NULL, None, None))
    where: dict[Any, tuple[str, int]] = {}
    for j, source, subset in wanted:
        key = (source, None if subset is None else j)
        if key not in slots:
            branch = _reference(model, x, t, spec, source, subset, beta, nag)
            if isinstance(source, ModelReference):
                slots[key] = ("other", len(others))
                others.append((source.model, branch))
            else:
                slots[key] = ("own", len(own))
                own.append(branch)
        where[j] = slots[key]
    mine = run_branches(model, own, stacked=stacked, cache=cache)
    theirs = [run_branches(m, [b], stacked=stacked)[0] for m, b in others]
    preds = {j: (theirs if kind == "other" else mine)[i] for j, (kind, i) in where.items()}
    for j, subset in subsets.items():
        if subset is not None:
            preds[j] = mine[0].index_copy(0, subset, preds[j])
    return mine[: len(spec.conds)], preds


def _reference(model: ConditionalModel, x: Tensor, t: Tensor, spec: Conditions, source: Any,
               subset: Tensor | None, beta: Tensor | None, nag: tuple) -> Branch:  # fmt: skip
    """One reference's branch; a perturbed one on the call's condition carries the NAG spans and β."""
    branch = reference_branch(model, x, t, spec, source, subset)
    if isinstance(source, PerturbedReference) and source.condition == "same":
        branch = carry_inside(branch, nag, subset)
        if beta is not None:
            branch = replace(branch, beta=beta if subset is None else beta.index_select(0, subset))
    return branch
