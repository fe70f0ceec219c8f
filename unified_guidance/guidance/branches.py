"""Running the branches of a guided call: one stacked forward per model, perturbations on their rows.

A branch is ``(x, t, cond)`` and, for a perturbed reference, the perturbation that acts on
its rows. The branches of one model run as one forward over their stacked rows (each
perturbation installed on its own row span, :func:`~unified_guidance.perturb.perturbed`), or
one after another where the guidance asks for it (memory); both give the same predictions.
A branch may also carry NAG acting inside its forward (:func:`~unified_guidance.perturb.nag_hooks.normalized`,
its spans re-based onto the branch's rows of the stacked forward).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import Tensor

from ..core.conditions import Cond, Conditions, cat_batch, take_rows
from ..core.model import ConditionalModel
from ..perturb.hooks import Rows, Selections, perturbed
from ..perturb.nag_hooks import NagSpan, normalized
from ..perturb.spec import Perturbation
from .spec import ModelReference, Source


@dataclass(frozen=True)
class Branch:
    """One forward's worth of rows: ``x`` ``(b, ...)``, ``t`` (scalar or ``(b,)``), ``cond``, and
    the perturbation acting on them (``None``: the model as it is), and the guidance strength β
    ``(b,)`` handed to a guidance-free model (``None``: none, the model's default β = 1), and the
    NAG acting inside its forward (spans over ``Rows.all(b)``)."""

    x: Tensor
    t: Tensor
    cond: Cond
    perturbation: Perturbation | None = None
    beta: Tensor | None = None
    nag: tuple[NagSpan, ...] = ()


def run_branches(
    model: ConditionalModel, branches: list[Branch], *, stacked: bool = True, cache: Selections | None = None
) -> list[Tensor]:
    """Evaluate ``model`` on every branch: one stacked forward (``stacked``), or one each.

    ``cache``: the modules each perturbation selected in ``model``, kept between calls."""
    if len(branches) == 1 or not stacked:
        return [_one(model, b, cache) for b in branches]
    sizes = [b.x.shape[0] for b in branches]
    total, entries, spans, at = sum(sizes), [], [], 0
    for b, size in zip(branches, sizes, strict=True):
        if b.perturbation is not None:
            entries.append((b.perturbation, Rows(at, at + size, total)))
        spans += [replace(span, rows=Rows(at, at + size, total)) for span in b.nag]
        at += size
    xs = torch.cat([b.x for b in branches])
    ts = branches[0].t if branches[0].t.ndim == 0 else torch.cat([b.t for b in branches])
    conds = cat_batch([b.cond for b in branches])
    beta = _stacked_beta(branches)
    out = _perturbed_forward(model, xs, ts, conds, entries, cache, beta, spans)
    if out.shape[0] != total:
        raise ValueError(f"model: expected an output with batch {total} (the stacked input), got {out.shape[0]}")
    return list(out.split(sizes))


def _stacked_beta(branches: list[Branch]) -> Tensor | None:
    """The strengths of stacked branches ``(Σb,)``: β = 1 for the branches that set none."""
    if all(b.beta is None for b in branches):
        return None
    ones = lambda b: torch.ones(b.x.shape[0], dtype=_dtype(branches), device=b.x.device)  # noqa: E731
    return torch.cat([ones(b) if b.beta is None else b.beta for b in branches])


def _dtype(branches: list[Branch]) -> torch.dtype:
    return next(b.beta.dtype for b in branches if b.beta is not None)


def _one(model: ConditionalModel, b: Branch, cache: Selections | None) -> Tensor:
    entries = [] if b.perturbation is None else [(b.perturbation, Rows.all(b.x.shape[0]))]
    return _perturbed_forward(model, b.x, b.t, b.cond, entries, cache, b.beta, list(b.nag))


def _perturbed_forward(
    model: ConditionalModel, x: Tensor, t: Tensor, cond: Cond, entries, cache, beta: Tensor | None, spans
) -> Tensor:
    """One forward with the perturbations ``entries`` and the NAG ``spans`` installed (if any)."""
    if not entries and not spans:
        return _call(model, x, t, cond, beta)
    return _hooked_forward(model, x, t, cond, entries, cache, beta, spans)


@torch.compiler.disable  # hooks installed per call cannot be traced: this forward runs eagerly
def _hooked_forward(model: ConditionalModel, x: Tensor, t: Tensor, cond: Cond, entries, cache, beta, spans) -> Tensor:
    with perturbed(model, entries, cache), normalized(model, spans, cache):
        return _call(model, x, t, cond, beta)


def _call(model: ConditionalModel, x: Tensor, t: Tensor, cond: Cond, beta: Tensor | None) -> Tensor:
    """One forward; β is handed over only where set (a model without the input keeps its signature)."""
    return model(x, t, cond) if beta is None else model(x, t, cond, beta=beta)


def reference_branch(
    model: ConditionalModel, x: Tensor, t: Tensor, spec: Conditions, source: Source, rows: Tensor | None = None
) -> Branch:
    """The rows of one reference: ∅ or the call's negative, the conditional ones under a perturbation
    (``condition="same"``) or ∅ under it, or another model's (whose forward the caller runs).

    ``rows`` ``(k,)``: these samples only (adaptive guidance).
    """
    if rows is not None:
        x, t = x.index_select(0, rows), t if t.ndim == 0 else t.index_select(0, rows)
    pick = (lambda c: c) if rows is None else (lambda c: take_rows(c, rows))
    null = lambda: model.null_condition(x.shape[0], device=x.device)  # noqa: E731
    if source is None:
        return Branch(x, t, null() if spec.negative is None else pick(spec.negative))
    if source.condition == "same":
        if len(spec.conds) > 1:
            what = "autoguidance" if isinstance(source, ModelReference) else "a perturbed reference"
            raise ValueError(f"cond: {what} with condition='same' takes one condition, got a composition")
        return Branch(x, t, pick(spec.conds[0]), getattr(source, "perturbation", None))
    if isinstance(source, ModelReference):
        return Branch(x, t, source.model.null_condition(x.shape[0], device=x.device))  # the other model's own ∅
    return Branch(x, t, null(), source.perturbation)
