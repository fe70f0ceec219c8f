"""The guided model: evaluates the branches and applies a rule, keeping ``(x, t, cond)``.

Where predictions come from (null condition, negative condition, reference
model) is kept apart from how they are combined (:mod:`.rules`). The
conditional and reference branches run as one forward over a stacked batch by
default; where the effective scale is exactly 1 the reference forward is not
run at all, and the saving is counted.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from ..core.checks import DeferredChecks
from ..core.conditions import Cond, Conditions, batch_size_of, cat_batch, take_rows
from ..core.model import ConditionalModel
from ..core.shapes import check_pair
from ..core.spaces import convert
from ..schedules.scale import Schedule
from .rules import Rule
from .spec import Guidance, GuidanceStats, GuidedPrediction, ModelReference

__all__ = ["Guidance", "GuidanceStats", "GuidedModel", "GuidedPrediction", "ModelReference", "guide"]


class GuidedModel(nn.Module):
    """A :class:`ConditionalModel` under guidance, called like it: ``(x, t, cond) -> prediction``.

    ``cond`` is a plain condition (reference: ∅) or a
    :class:`~unified_guidance.core.conditions.Conditions` with several weighted
    conditions and/or a negative one. The output is in the model's own space.
    Rules with state (APG) keep it here between calls; :meth:`reset` clears it,
    and samplers call it at the start of each generation.
    """

    def __init__(self, model: ConditionalModel, guidance: Guidance) -> None:
        super().__init__()
        if not isinstance(model, ConditionalModel):
            raise TypeError(f"model: expected a ConditionalModel, got {type(model).__name__}")
        if not isinstance(guidance, Guidance):
            raise TypeError(f"guidance: expected a Guidance, got {type(guidance).__name__}")
        ref = guidance.reference
        if ref is not None and ref.model.space != model.space:
            raise ValueError(
                f"reference: the reference model predicts {ref.model.space!r} but the model predicts "
                f"{model.space!r}; both branches are mixed in one space, so they must agree"
            )
        self.model = model
        self.guidance = guidance
        self.state: Any = None
        self._calls = self._skipped = self._skipped_rows = 0

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
        self.state = None

    @property
    def stats(self) -> GuidanceStats:
        return GuidanceStats(self._calls, self._skipped, self._skipped_rows)

    def reset_stats(self) -> None:
        self._calls = self._skipped = self._skipped_rows = 0
        self.model.reset_stats()
        if self.guidance.reference is not None:
            self.guidance.reference.model.reset_stats()

    def forward(self, x: Tensor, t: Tensor | float, cond: Cond | Conditions | None = None) -> Tensor:
        return self.evaluate(x, t, cond).guided

    def evaluate(
        self, x: Tensor, t: Tensor | float, cond: Cond | Conditions | None = None, *, need_reference: bool = False
    ) -> GuidedPrediction:
        """The guided prediction with the branches it came from (all in the model's space).

        ``need_reference=True`` runs the reference branch even where the scale is 1
        (solvers such as CFG++ re-noise with it); otherwise it is skipped there and
        :attr:`GuidedPrediction.reference` is ``None``.
        """
        g = self.guidance
        spec = cond if isinstance(cond, Conditions) else None
        first = spec.conds[0] if spec is not None else cond
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
        tau = self._progress(t, checks)
        with checks.first():  # a bad x or t is reported even if it makes the network raise
            return self._evaluate(x, t, tau, cond, spec, need_reference, checks)

    def _evaluate(
        self,
        x: Tensor,
        t: Tensor,
        tau: Tensor,
        cond: Cond | Conditions | None,
        spec: Conditions | None,
        need_reference: bool,
        checks: DeferredChecks,
    ) -> GuidedPrediction:
        g, batch = self.guidance, x.shape[0]
        scale = g.schedule.value(tau)
        checks.finite("scale", scale, f"from the {type(g.schedule).__name__} schedule")
        rule: Rule = g.rule  # type: ignore[assignment]
        self._check_scale(rule, scale, checks)
        self._calls += 1

        if rule.zero_output(tau) and not need_reference:
            self._count_skip(batch * (1 + (len(spec.conds) if spec else 1)))
            zero = self._to(torch.zeros_like(x), rule.space or self.space, self.space, x, t)
            checks.verify()
            return GuidedPrediction(zero, zero, None)

        single = spec is None or spec.is_single
        active = rule.reference_rows(self.state, batch)  # None: every sample needs the reference
        nobody = active is not None and not bool(active.any())
        # cond=None asks for ∅ itself: u + s(u − u) = u at every scale, one forward.
        if single and not need_reference and (cond is None or nobody or bool((scale == 1).all())):
            self._count_skip(batch)
            c = self.model(x, t, cond if spec is None else spec.conds[0])
            checks.trace("conditional prediction", c)
            out = self._post(c, c, self.space, x, t, checks)
            checks.finite("guided prediction", out, f"the guided model's output (space {self.space!r})")
            checks.verify()
            return GuidedPrediction(out, c, None)

        rows = None if need_reference or active is None or bool(active.all()) else active.nonzero().squeeze(1)
        conds, uncond = self._branches(x, t, spec if spec is not None else Conditions.single(cond), checks, rows)
        space = rule.space or self.space
        u_native = self._to(uncond, self.space, space, x, t)
        if single:
            c_native, combined = self._to(conds[0], self.space, space, x, t), conds[0]
        else:
            natives = [self._to(c, self.space, space, x, t) for c in conds]
            c_native = rule.compose(natives, u_native, spec.weights)  # type: ignore[union-attr]
            combined = self._to(c_native, space, self.space, x, t)
        if space != self.space:
            checks.trace(f"conditional prediction in {space}", c_native, f"converted from {self.space!r} at t")
            checks.trace(f"reference prediction in {space}", u_native, f"converted from {self.space!r} at t")
        guided, state = rule(c_native, u_native, scale, tau=tau, state=self.state)
        checks.trace("guided prediction", guided, f"made by {rule!r} from finite branches")
        out = self._post(guided, c_native, space, x, t, checks)
        checks.finite("guided prediction", out, f"the guided model's output (space {self.space!r})")
        checks.verify()
        self.state = state
        return GuidedPrediction(out, combined, uncond)

    def _progress(self, t: Tensor, checks: DeferredChecks) -> Tensor:
        """Progress τ of ``t``, with "τ ∈ [0, 1]" queued as a check stated in ``t``."""
        path = self.model.path
        if path is None:
            return t
        tau = path.progress(t)
        tau = tau if tau.is_floating_point() else tau.to(torch.get_default_dtype())
        ends = lambda: path.time(torch.tensor([0.0, 1.0], dtype=torch.float64)).tolist()  # noqa: E731
        checks.require(
            (tau >= 0) & (tau <= 1),
            lambda: (
                f"t: expected times on the model's path, from {ends()[0]:g} (noise) to {ends()[1]:g} (data), "
                f"got values in [{float(t.min()):g}, {float(t.max()):g}]"
            ),
        )
        return tau

    @staticmethod
    def _check_scale(rule: Rule, scale: Tensor, checks: DeferredChecks) -> None:
        lo = rule.min_scale
        if lo is not None:
            checks.require(
                scale >= lo,
                lambda: f"scale: {type(rule).__name__} expects scales ≥ {lo}, got a minimum of {float(scale.min()):g}",
            )

    # -- branches ---------------------------------------------------------------------------

    def _branches(
        self, x: Tensor, t: Tensor, spec: Conditions, checks: DeferredChecks, rows: Tensor | None = None
    ) -> tuple[list[Tensor], Tensor]:
        """The conditional predictions (one per condition) and the reference prediction.

        ``rows`` ``(k,)``: run the reference for these samples only; the others get
        the first conditional prediction in its place (a rule that stopped guiding them ignores it).
        """
        g, n = self.guidance, len(spec.conds)
        ref = g.reference
        if ref is not None and spec.negative is not None:
            raise ValueError("negative: a reference model and a negative condition both claim the reference branch")
        if ref is not None and ref.condition == "same" and n > 1:
            raise ValueError("cond: autoguidance with condition='same' takes one condition, got a composition")
        pick = (lambda c: c) if rows is None else (lambda c: take_rows(c, rows))
        x_ref = pick(x)
        t_ref = t if t.ndim == 0 else pick(t)
        branches: list[tuple[Tensor, Tensor, Cond]] = [(x, t, c) for c in spec.conds]
        if ref is None:
            negative = spec.negative
            null = self.model.null_condition(x_ref.shape[0], device=x.device) if negative is None else None
            branches.append((x_ref, t_ref, pick(negative) if negative is not None else null))
        preds = self._run(self.model, branches)
        if ref is not None:
            uncond = ref.model(x_ref, t_ref, pick(spec.conds[0]) if ref.condition == "same" else None)
        else:
            uncond = preds.pop()
        if rows is not None:
            self._skipped_rows += x.shape[0] - rows.shape[0]
            uncond = preds[0].index_copy(0, rows, uncond)
        for i, c in enumerate(preds):
            checks.trace(f"conditional prediction {i}" if n > 1 else "conditional prediction", c)
            check_pair("conditional prediction", c, "reference prediction", uncond)
        checks.trace("reference prediction", uncond)
        return preds, uncond

    def _run(self, model: ConditionalModel, branches: list[tuple[Tensor, Tensor, Cond]]) -> list[Tensor]:
        """Evaluate ``model`` on every ``(x, t, cond)`` branch: one stacked forward, or one each."""
        if len(branches) == 1 or not self.guidance.batch_branches:
            return [model(x, t, c) for x, t, c in branches]
        sizes = [x.shape[0] for x, _, _ in branches]
        xs = torch.cat([x for x, _, _ in branches])
        ts_ = [t for _, t, _ in branches]
        ts = ts_[0] if ts_[0].ndim == 0 else torch.cat(ts_)
        out = model(xs, ts, cat_batch([c for _, _, c in branches]))
        if out.shape[0] != sum(sizes):
            raise ValueError(
                f"model: expected an output with batch {sum(sizes)} (the stacked input), got {out.shape[0]}"
            )
        return list(out.split(sizes))

    # -- helpers ----------------------------------------------------------------------------

    def _post(self, guided: Tensor, cond: Tensor, space: str, x: Tensor, t: Tensor, checks: DeferredChecks) -> Tensor:
        for post in self.guidance.post:
            target = post.space or space
            guided, cond = self._to(guided, space, target, x, t), self._to(cond, space, target, x, t)
            guided, space = post(guided, cond), target
            checks.trace("post", guided, f"made by {post!r}")
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
