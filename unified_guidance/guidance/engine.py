"""The guided model: evaluates the branches and combines them, keeping ``(x, t, cond)``.

Where predictions come from (null condition, negative condition, reference
model, perturbation: :mod:`.branches`) is kept apart from how they are combined
(:func:`~.combine.combine`, the same step autoregressive decoding uses). The
conditional and reference branches run as one forward over a stacked batch by
default; where a reference's scale is exactly 1 its forward is not run at all,
and the saving is counted.

A guidance-free model (:attr:`~unified_guidance.core.ConditionalModel.guidance_input`:
GFT, guidance distillation) *folds* its CFG reference on ∅ into the conditional call: that
call hands the network β = 1/w(τ) and returns the guided prediction in one forward of B
rows; the reference is not run and adds nothing to ĝ = c + Σ(g_j − c). Where the model
cannot express the guidance in that forward (another rule, a negative or several
conditions, a post-process that reads c), the reference runs as for any model, at β = 1
(the decision: :func:`~.fold.folded_reference`, shared with autoregressive decoding).
A NAG reference acts inside the conditional forward too and runs no rows (:mod:`.inside`).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from ..core.checks import DeferredChecks
from ..core.conditions import Cond, Conditions, batch_size_of
from ..core.model import ConditionalModel
from ..core.shapes import as_time, batch_time, check_pair
from ..core.spaces import convert
from ..perturb.hooks import Selections
from ..schedules.scale import Schedule
from .call_branches import NULL, call_predictions
from .calls import compiling, is_unit, progress_at, scale_at
from .combine import combine
from .fold import folded_reference, strength
from .inside import acts_inside, check_inside, inside_spans
from .plan import Plan, StepPlan
from .rules import CFG
from .spec import (
    Guidance,
    GuidanceStats,
    GuidedPrediction,
    ModelReference,
    PerturbedReference,
    Reference,
    as_guidance,
)

__all__ = [
    "Guidance",
    "GuidanceStats",
    "GuidedModel",
    "GuidedPrediction",
    "ModelReference",
    "PerturbedReference",
    "Reference",
    "guide",
]


class GuidedModel(nn.Module):
    """A :class:`ConditionalModel` under guidance, called like it: ``(x, t, cond) -> prediction``.

    ``cond`` is a plain condition (reference: ∅) or a
    :class:`~unified_guidance.core.conditions.Conditions` with several weighted
    conditions and/or a negative one. The output is in the model's own space.
    Rules with state (APG) keep it here between calls; :meth:`reset` clears it,
    and samplers call it at the start of each generation.
    """

    _calls: Tensor  # buffers, registered in __init__
    _skipped: Tensor
    _skipped_rows: Tensor

    def __init__(self, model: ConditionalModel, guidance: Guidance) -> None:
        super().__init__()
        if not isinstance(model, ConditionalModel):
            raise TypeError(f"model: expected a ConditionalModel, got {type(model).__name__}")
        if not isinstance(guidance, Guidance):
            raise TypeError(f"guidance: expected a Guidance, got {type(guidance).__name__}")
        for other in guidance.reference_models():
            if other.space != model.space:
                raise ValueError(
                    f"reference: the reference model predicts {other.space!r} but the model predicts "
                    f"{model.space!r}; both branches are mixed in one space, so they must agree"
                )
        check_inside(guidance.references)
        self._selected: Selections = {}  # the modules each perturbation acts on, found once
        for r in guidance.references:
            if isinstance(r.source, PerturbedReference):  # an empty selection is refused here, not at a step
                self._selected[r.source.perturbation] = r.source.perturbation.select(model)
        self.model = model
        self.guidance = guidance
        self.states: list[Any] = [None] * len(guidance.references)
        for name in ("_calls", "_skipped", "_skipped_rows"):  # tensors: torch.compile specialises on ints
            self.register_buffer(name, torch.zeros((), dtype=torch.long), persistent=False)

    @property
    def space(self) -> str:
        return self.model.space

    @property
    def path(self):
        return self.model.path

    def progress(self, t: Tensor) -> Tensor:
        return self.model.progress(t)

    def reset(self) -> None:
        """Forget rule state (APG momentum) before a new generation."""
        self.states = [None] * len(self.guidance.references)

    @property
    def stats(self) -> GuidanceStats:
        return GuidanceStats(int(self._calls), int(self._skipped), int(self._skipped_rows))

    def reset_stats(self) -> None:
        for counter in (self._calls, self._skipped, self._skipped_rows):
            counter.zero_()
        self.model.reset_stats()
        for other in self.guidance.reference_models():
            other.reset_stats()

    def forward(self, x: Tensor, t: Tensor | float, cond: Cond | Conditions | None = None) -> Tensor:
        return self.evaluate(x, t, cond).guided

    def plan(self, times: Tensor) -> Plan:
        """What each call at ``times`` ``(N,)`` will skip, decided on the host before a sampling loop.

        A sampler with a time grid known in advance passes ``plan[i]`` to :meth:`evaluate`, so
        the per-call skips need no read-back: that call runs without a host synchronisation
        (with ``check_finite=False``) and compiles into one graph.
        """
        tau = self.progress(times) if self.model.path is not None else times
        return Plan.build(self.guidance, tau)

    def evaluate(
        self, x: Tensor, t: Tensor | float, cond: Cond | Conditions | None = None, *, plan: StepPlan | None = None
    ) -> GuidedPrediction:
        """The guided prediction with the branches it came from (all in the model's space).

        A reference is not run where its scale is 1 or its rule outputs zero
        (:attr:`GuidedPrediction.references` holds ``None`` there). ``plan``: this call's entry
        of :meth:`plan`; without it the engine reads the scales back, or, under
        ``torch.compile``, runs every reference.
        """
        g = self.guidance
        spec = cond if isinstance(cond, Conditions) else None
        first = spec.conds[0] if spec is not None else cond
        assert not isinstance(first, Conditions)
        batch = x.shape[0] if isinstance(x, Tensor) and x.ndim > 0 else None
        if batch is None:
            raise ValueError(f"x: expected a (B, ...) tensor, got {_describe(x)}")
        if first is not None and batch_size_of(first) != batch:
            raise ValueError(f"cond: expected batch size {batch} (that of x), got {batch_size_of(first)}")
        t = as_time(t, x)
        if t.ndim != 0 and tuple(t.shape) != (batch,):
            raise ValueError(f"t: expected a scalar or shape ({batch},) (the batch of x), got shape {tuple(t.shape)}")
        checks = DeferredChecks(g.check_finite)
        checks.trace("x", x, "the state the guided model was called with")
        tau = progress_at(self.model.path, t, checks)
        with checks.first():  # a bad x or t is reported even if it makes the network raise
            return self._evaluate(x, t, tau, cond, spec, checks, plan)

    def _evaluate(
        self,
        x: Tensor,
        t: Tensor,
        tau: Tensor,
        cond: Cond | Conditions | None,
        spec: Conditions | None,
        checks: DeferredChecks,
        plan: StepPlan | None,
    ) -> GuidedPrediction:
        refs, batch = self.guidance.references, x.shape[0]
        scales = [scale_at(r, tau, checks) for r in refs]
        zero = [r.rule.zero_output(tau) for r in refs] if plan is None else list(plan.zero)
        unit = [is_unit(w) for w in scales] if plan is None else list(plan.unit)
        self._calls += 1
        if len(refs) == 1 and zero[0]:  # ĝ = 0: not even the conditional branch is needed
            self._count_skip(batch * (1 + (len(spec.conds) if spec else 1)))
            out = self._to(torch.zeros_like(x), refs[0].rule.space or self.space, self.space, x, t)
            checks.verify()
            return GuidedPrediction(out, out, (None,))
        if spec is None:
            assert not isinstance(cond, Conditions)
            spec = Conditions.single(self.model.null_condition(batch, device=x.device) if cond is None else cond)
        elif (
            spec.negative is not None
            and spec.is_single
            and all(r.source is not None and not acts_inside(r) for r in refs)
        ):
            raise ValueError(
                "cond: a negative condition takes the place of ∅, but no reference is on ∅ (all run another "
                "model or a perturbation); add Reference(None, scale) to the guidance or drop the negative"
            )
        rows = [r.rule.reference_rows(state, batch) for r, state in zip(refs, self.states, strict=True)]
        nag, spec = inside_spans(self.model, refs, scales, unit, cond, spec, x)  # NAG takes the negative
        fold = folded_reference(
            self.guidance, guidance_input=self.model.guidance_input, on_null=cond is not None and spec.negative is None,
            one_condition=spec.is_single, idle=[u or z for u, z in zip(unit, zero, strict=True)],
        )  # fmt: skip
        inside = {j for j, r in enumerate(refs) if acts_inside(r)} | {fold}
        run = [
            j
            for j in range(len(refs))
            if j not in inside and self._runs(refs[j], cond, spec, unit[j] or zero[j], rows[j])
        ]
        for j in set(range(len(refs))) - set(run) - inside:  # a composition runs ∅ all the same: no rows saved there
            self._count_skip(0 if refs[j].source is None and not spec.is_single else batch)
        subsets = {j: _subset(rows[j]) for j in run}
        beta = None
        if fold is not None:  # β = 1/w (B,) handed with the conditional rows
            beta = strength(batch_time(scales[fold], batch, device=x.device, dtype=scales[fold].dtype, name="scale"))
        conds, preds = self._branches(x, t, spec, subsets, checks, beta, nag)
        combined = self._compose(x, t, spec, conds, preds)
        refs_out = [preds.get(j) for j in range(len(refs))]
        result = combine(refs, self.guidance.post, combined, refs_out, scales, tau, self.states,
                         zero=zero, space=self.space, convert=lambda p, a, b: self._to(p, a, b, x, t),
                         trace=checks.trace)  # fmt: skip
        checks.finite("guided prediction", result.guided, f"the guided model's output (space {self.space!r})")
        checks.verify()
        self.states = list(result.states)
        return GuidedPrediction(result.guided, combined, tuple(refs_out))

    def _runs(self, ref: Reference, cond: Any, spec: Conditions, idle: bool, rows: Tensor | None) -> bool:
        """Whether a reference must run: its scale is not 1 and its rule does not output zero, some
        sample still needs it, and it is not ∅ against a call that asked for ∅ itself (u + s(u − u) = u)."""
        if idle:
            return False
        if rows is not None and not compiling() and not bool(rows.any()):
            return False
        return not (ref.source is None and cond is None)

    def _compose(self, x: Tensor, t: Tensor, spec: Conditions, conds: list[Tensor], preds: dict) -> Tensor:
        """The conditional prediction: c itself, or for several weighted conditions their composition
        u + Σ wᵢ(cᵢ − u) against ∅ (or the negative), in the rule space of the references on ∅."""
        if spec.is_single:
            return conds[0]
        rule = next((r.rule for r in self.guidance.references if r.source is None), CFG())
        space = rule.space or self.space
        u = self._to(preds[NULL], self.space, space, x, t)
        natives = [self._to(c, self.space, space, x, t) for c in conds]
        return self._to(rule.compose(natives, u, spec.weights), space, self.space, x, t)

    # -- branches ---------------------------------------------------------------------------

    def _branches(
        self, x: Tensor, t: Tensor, spec: Conditions, subsets: dict, checks: DeferredChecks, beta: Tensor | None,
        nag: tuple,
    ) -> tuple[list[Tensor], dict]:  # fmt: skip
        """The predictions of the call's branches (:func:`~.call_branches.call_predictions`), the rows its
        subsets skipped counted and each prediction traced and checked against the conditional one."""
        conds, preds = call_predictions(
            self.model, self.guidance.references, x, t, spec, subsets, beta=beta, nag=nag,
            stacked=self.guidance.batch_branches, cache=self._selected,
        )  # fmt: skip
        for subset in subsets.values():
            if subset is not None:
                self._skipped_rows += x.shape[0] - subset.shape[0]
        named = {j: _name(j, len(self.guidance.references)) for j in preds}
        for i, c in enumerate(conds):
            checks.trace(f"conditional prediction {i}" if len(conds) > 1 else "conditional prediction", c)
            for j, r in preds.items():
                check_pair("conditional prediction", c, named[j], r)
        for j, r in preds.items():
            checks.trace(named[j], r)
        return conds, preds

    # -- helpers ----------------------------------------------------------------------------

    def _to(self, pred: Tensor, src: str, dst: str, x: Tensor, t: Tensor) -> Tensor:
        if src == dst:
            return pred
        coeffs = self.model.coefficients(t) if self.model.path is not None else None
        return convert(pred, src, dst, x, coeffs)

    def _count_skip(self, rows: int) -> None:
        self._skipped += 1
        self._skipped_rows += rows


def _describe(value: Any) -> str:
    return f"a tensor of shape {tuple(value.shape)}" if isinstance(value, Tensor) else type(value).__name__


def guide(model: ConditionalModel, guidance: Guidance | float | Schedule) -> GuidedModel:
    """Wrap ``model`` under ``guidance`` (a :class:`Guidance`, or just a scale for plain CFG)."""
    return GuidedModel(model, as_guidance(guidance))


def _name(j: int | str, count: int) -> str:
    if j == NULL:
        return "null prediction"
    return "reference prediction" if count == 1 else f"reference {j} prediction"


def _subset(rows: Tensor | None) -> Tensor | None:
    """The samples ``(k,)`` a rule still needs the reference for; ``None``: all of them (or, under
    ``torch.compile``, run every row rather than read the selection back)."""
    if rows is None or compiling() or bool(rows.all()):
        return None
    return rows.nonzero()[:, 0]
