"""The guided model: evaluates the branches and applies a rule, keeping ``(x, t, cond)``.

Where predictions come from (null condition, negative condition, reference
model) is kept apart from how they are combined (:mod:`.rules`). The
conditional and reference branches run as one forward over a stacked batch by
default; where the effective scale is exactly 1 the reference forward is not
run at all, and the saving is counted.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import torch
from torch import Tensor, nn

from ..core.checks import DeferredChecks
from ..core.conditions import Cond, Conditions, batch_size_of
from ..core.model import ConditionalModel
from ..core.shapes import check_pair
from ..core.spaces import convert
from ..perturb.hooks import Selections
from ..perturb.spec import Perturbation
from ..schedules.scale import Schedule
from .branches import Branch, reference_branch, run_branches
from .calls import compiling, is_unit, progress_at, scale_at
from .rules import PostProcess, Rule
from .spec import (
    Guidance,
    GuidanceStats,
    GuidedPrediction,
    ModelReference,
    PerturbedReference,
    Reference,
    StepPlan,
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

    @property
    def state(self) -> Any:
        """The first reference's rule state (APG momentum, adaptive guidance's stopped samples)."""
        return self.states[0]

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

    def plan(self, times: Tensor) -> list[StepPlan]:
        """What each call at ``times`` ``(N,)`` will skip, decided on the host before a sampling loop.

        A sampler with a time grid known in advance passes ``plan[i]`` to :meth:`evaluate`, so
        the per-call skips need no read-back: that call runs without a host synchronisation
        (with ``check_finite=False``) and compiles into one graph.
        """
        tau = self.progress(times) if self.model.path is not None else times
        units = [r.schedule.value(tau) == 1 for r in self.guidance.references]
        zero = [self.guidance.rule.zero_output(tau[i : i + 1]) for i in range(len(tau))]  # type: ignore[union-attr]
        flags = torch.stack(units, dim=1).tolist()
        return [StepPlan(tuple(f), z) for f, z in zip(flags, zero, strict=True)]

    def evaluate(
        self,
        x: Tensor,
        t: Tensor | float,
        cond: Cond | Conditions | None = None,
        *,
        need_reference: bool = False,
        plan: StepPlan | None = None,
    ) -> GuidedPrediction:
        """The guided prediction with the branches it came from (all in the model's space).

        ``need_reference=True`` runs the reference branch even where the scale is 1
        (solvers such as CFG++ re-noise with it); otherwise it is skipped there and
        :attr:`GuidedPrediction.reference` is ``None``. ``plan``: this call's entry of
        :meth:`plan` (which references have scale 1, whether the rule outputs zero); without
        it the engine reads the scales back, or, under ``torch.compile``, runs every reference.
        """
        g = self.guidance
        spec = cond if isinstance(cond, Conditions) else None
        first = cond.conds[0] if isinstance(cond, Conditions) else cond
        batch = x.shape[0] if isinstance(x, Tensor) and x.ndim > 0 else None
        if batch is None:
            raise ValueError(f"x: expected a (B, ...) tensor, got {_describe(x)}")
        if first is not None and batch_size_of(first) != batch:
            raise ValueError(f"cond: expected batch size {batch} (that of x), got {batch_size_of(first)}")
        t = torch.as_tensor(t, device=x.device)
        if t.ndim != 0 and tuple(t.shape) != (batch,):
            raise ValueError(f"t: expected a scalar or shape ({batch},) (the batch of x), got shape {tuple(t.shape)}")
        checks = DeferredChecks(g.check_finite)
        checks.trace("x", x, "the state the guided model was called with")
        tau = progress_at(self.model.path, t, checks)
        with checks.first():  # a bad x or t is reported even if it makes the network raise
            return self._evaluate(x, t, tau, cond, spec, need_reference, checks, plan)

    def _evaluate(
        self,
        x: Tensor,
        t: Tensor,
        tau: Tensor,
        cond: Cond | Conditions | None,
        spec: Conditions | None,
        need_reference: bool,
        checks: DeferredChecks,
        plan: StepPlan | None,
    ) -> GuidedPrediction:
        refs, batch = self.guidance.references, x.shape[0]
        scales = [scale_at(r, tau, checks) for r in refs]
        first: Rule = refs[0].rule  # type: ignore[assignment]
        self._calls += 1
        if (first.zero_output(tau) if plan is None else plan.zero) and not need_reference:
            self._count_skip(batch * (1 + (len(spec.conds) if spec else 1)))
            zero = self._to(torch.zeros_like(x), first.space or self.space, self.space, x, t)
            checks.verify()
            return GuidedPrediction(zero, zero, None, (None,) * (len(refs) - 1))
        if spec is None:
            assert not isinstance(cond, Conditions)  # spec is cond when it is one
            spec = Conditions.single(self.model.null_condition(batch, device=x.device) if cond is None else cond)
        active = first.reference_rows(self.states[0], batch)  # None: every sample needs the reference
        unit = [is_unit(w) for w in scales] if plan is None else plan.unit
        run = [j for j in range(len(refs)) if self._runs(j, cond, spec, unit[j], active, need_reference)]
        for _ in range(len(refs) - len(run)):
            self._count_skip(batch)
        if not run:  # the conditional prediction is the guided one
            c = self.model(x, t, spec.conds[0])
            checks.trace("conditional prediction", c)
            out = self._post(c, c, self.space, x, t, checks)
            checks.finite("guided prediction", out, f"the guided model's output (space {self.space!r})")
            checks.verify()
            return GuidedPrediction(out, c, None, (None,) * (len(refs) - 1))
        rows = None if need_reference or active is None or compiling() or bool(active.all()) else active.nonzero()[:, 0]
        conds, preds = self._branches(x, t, spec, run, checks, rows)
        out, combined, states = self._combine(x, t, tau, spec, conds, preds, scales, checks)
        checks.finite("guided prediction", out, f"the guided model's output (space {self.space!r})")
        checks.verify()
        for j, state in states.items():
            self.states[j] = state
        return GuidedPrediction(out, combined, preds.get(0), tuple(preds.get(j) for j in range(1, len(refs))))

    def _combine(
        self,
        x: Tensor,
        t: Tensor,
        tau: Tensor,
        spec: Conditions,
        conds: list[Tensor],
        preds: dict[int, Tensor],
        scales: list[Tensor],
        checks: DeferredChecks,
    ) -> tuple[Tensor, Tensor, dict[int, Any]]:
        """ĝ = g_first + Σ_rest (g_j − c), g_j = rule_j(c, r_j, w_j) in the rule's space; one reference: g_j."""
        refs, states = self.guidance.references, {}
        combined = conds[0]
        if not spec.is_single:  # a composition is formed against the first reference, in its rule's space
            space = refs[0].rule.space or self.space  # type: ignore[union-attr]
            u = self._to(preds[0], self.space, space, x, t)
            natives = [self._to(c, self.space, space, x, t) for c in conds]
            combined = self._to(refs[0].rule.compose(natives, u, spec.weights), space, self.space, x, t)  # type: ignore[union-attr]
        total, c_total, space_total = None, combined, self.space
        for j, r_pred in preds.items():
            rule: Rule = refs[j].rule  # type: ignore[assignment]
            space = rule.space or self.space
            c_native, r_native = self._to(combined, self.space, space, x, t), self._to(r_pred, self.space, space, x, t)
            if space != self.space:
                checks.trace(f"conditional prediction in {space}", c_native, f"converted from {self.space!r} at t")
                checks.trace(f"{_name(j)} in {space}", r_native, f"converted from {self.space!r} at t")
            guided, states[j] = rule(c_native, r_native, scales[j], tau=tau, state=self.states[j])
            checks.trace("guided prediction", guided, partial("made by {!r} from finite branches".format, rule))
            if len(preds) == 1:  # exactly the rule's output, post-processed from its own space
                total, c_total, space_total = guided, c_native, space
            else:
                guided = self._to(guided, space, self.space, x, t)
                total = guided if total is None else total + (guided - combined)
        assert total is not None
        return self._post(total, c_total, space_total, x, t, checks), combined, states

    def _runs(
        self, j: int, cond: Any, spec: Conditions, unit: bool, active: Tensor | None, need_reference: bool
    ) -> bool:
        """Whether reference ``j`` must run: its scale is not 1 everywhere (and, for the first, the call
        asked for ∅ itself — u + s(u − u) = u — or no sample still needs it)."""
        if j > 0:
            return not unit
        if need_reference or not spec.is_single:
            return True
        nobody = active is not None and not compiling() and not bool(active.any())
        return not (cond is None or nobody or unit)

    # -- branches ---------------------------------------------------------------------------

    def _branches(
        self, x: Tensor, t: Tensor, spec: Conditions, run: list[int], checks: DeferredChecks, rows: Tensor | None
    ) -> tuple[list[Tensor], dict[int, Tensor]]:
        """The conditional predictions (one per condition) and the predictions of the references ``run``.

        The model's own branches (conditions, ∅ or the negative, perturbed references) run as one
        stacked forward; another model's, as its own. ``rows`` ``(k,)``: run the first reference for
        these samples only; the others get the first conditional prediction in its place (a rule
        that stopped guiding them ignores it).
        """
        refs, n = self.guidance.references, len(spec.conds)
        own = [Branch(x, t, c) for c in spec.conds]
        slots: dict[Any, int] = {}  # equal sources run once
        where: dict[int, tuple[str, int]] = {}
        others: list[tuple[ConditionalModel, Branch]] = []
        for j in run:
            source, subset = refs[j].source, rows if j == 0 else None
            assert not isinstance(source, Perturbation)  # Reference wrapped it in a PerturbedReference
            if j == 0 and isinstance(source, ModelReference) and spec.negative is not None:
                raise ValueError("negative: a reference model and a negative condition both claim the reference branch")
            key = (source, None if subset is None else "rows")
            if key not in slots:
                branch = reference_branch(self.model, x, t, spec, source, subset)
                if isinstance(source, ModelReference):
                    slots[key] = len(others)
                    others.append((source.model, branch))
                else:
                    slots[key] = len(own)
                    own.append(branch)
            where[j] = ("other" if isinstance(source, ModelReference) else "own", slots[key])
        stacked = self.guidance.batch_branches
        mine = run_branches(self.model, own, stacked=stacked, cache=self._selected)
        theirs = [run_branches(m, [b], stacked=stacked)[0] for m, b in others]
        preds = {j: (theirs if kind == "other" else mine)[i] for j, (kind, i) in where.items()}
        if rows is not None and 0 in preds:
            self._skipped_rows += x.shape[0] - rows.shape[0]
            preds[0] = mine[0].index_copy(0, rows, preds[0])
        conds = mine[:n]
        for i, c in enumerate(conds):
            checks.trace(f"conditional prediction {i}" if n > 1 else "conditional prediction", c)
            for j, r in preds.items():
                check_pair("conditional prediction", c, _name(j), r)
        for j, r in preds.items():
            checks.trace(_name(j), r)
        return conds, preds

    # -- helpers ----------------------------------------------------------------------------

    def _post(self, guided: Tensor, cond: Tensor, space: str, x: Tensor, t: Tensor, checks: DeferredChecks) -> Tensor:
        for post in self.guidance.post:
            assert isinstance(post, PostProcess)  # Guidance made names into PostProcess objects
            target = post.space or space
            guided, cond = self._to(guided, space, target, x, t), self._to(cond, space, target, x, t)
            guided, space = post(guided, cond), target
            checks.trace("post", guided, partial("made by {!r}".format, post))
        return self._to(guided, space, self.space, x, t)

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
    if not isinstance(guidance, Guidance):
        guidance = Guidance(scale=guidance)
    return GuidedModel(model, guidance)


def _name(j: int) -> str:
    return "reference prediction" if j == 0 else f"reference {j} prediction"
