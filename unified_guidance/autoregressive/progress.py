"""Token progress τ and the guidance plan of a decode.

The k-th new token (k = 0 … N−1 of ``max_new_tokens`` = N) sits at progress
``τ_k = k/(N − 1)`` (τ = 0 for the first new token, 1 for the last; N = 1 gives
τ = 0), so a schedule means the same thing for 16 or 1,024 new tokens. Paper
schedules over token progress, in the scale convention ``u + s(c − u)``:

* constant: ``Constant(s)`` or a number;
* interval: ``Interval(s, lo, hi)``: guidance only for τ ∈ [lo, hi];
* linear ramp as in VAR (Tian et al., arXiv 2404.02905), guidance growing from 1 to s
  over the generation: :func:`linear_ramp`;
* annealing as in MAGNeT (Ziv et al., arXiv 2401.04577), linear decay from a high
  scale to a low one: :func:`anneal`.

Once a reference's scale stays exactly 1 for the rest of the generation, the decoder drops its
rows from the batch and the KV cache; the same :class:`~unified_guidance.guidance.plan.Plan` decides
the guided model's skips on a time grid.

A guidance-free model (:attr:`~.model.CausalLMModel.guidance_input`) folds its CFG reference on
∅ into the conditional rows as the guided model does (:func:`~unified_guidance.guidance.fold.folded_reference`,
decided per token): the token at step k is one forward of the prompt rows fed β_k = 1/s(τ_k)
(:class:`FoldPlan`), and a reference folded at every step it would run never enters the batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..guidance.fold import folded_reference, strength
from ..guidance.plan import Plan, check_unit_intervals
from ..guidance.spec import Guidance
from ..schedules.scale import Linear, Schedule


def linear_ramp(scale: float) -> Schedule:
    """VAR's linear ramp: ``s(τ) = 1 + (scale − 1)·τ`` (arXiv 2404.02905)."""
    return Linear(1.0, scale)


def anneal(start: float, end: float = 1.0) -> Schedule:
    """MAGNeT's annealing: ``s(τ) = start + (end − start)·τ`` (arXiv 2401.04577)."""
    return Linear(start, end)


def token_progress(step: int, max_new_tokens: int) -> float:
    """τ of the ``step``-th new token (0-based) out of ``max_new_tokens``."""
    return 0.0 if max_new_tokens <= 1 else step / (max_new_tokens - 1)


def token_taus(max_new_tokens: int, dtype: torch.dtype = torch.float64) -> Tensor:
    """τ of every new token ``(N,)``: ``τ_k = k/(N − 1)`` (:func:`token_progress`)."""
    return torch.tensor([token_progress(k, max_new_tokens) for k in range(max_new_tokens)], dtype=dtype)


def decode_plan(guidance: Guidance, max_new_tokens: int) -> Plan:
    """The :class:`~unified_guidance.guidance.plan.Plan` of a decode of ``max_new_tokens`` tokens: each
    reference's scale at every token and the step from which its rows leave the batch
    (:meth:`~unified_guidance.guidance.plan.Plan.unused_from`)."""
    plan = Plan.build(guidance, token_taus(max_new_tokens))
    for j, r in enumerate(guidance.references):
        check_unit_intervals(r.schedule, plan.taus, plan.scales[:, j])
    return plan


@dataclass(frozen=True, eq=False)
class FoldPlan:
    """Which reference a guidance-free model folds at each token and the strength it is fed.

    ``folds[k]``: the reference folded at step k (``None``: none, β = 1); ``beta`` ``(N,)`` float64:
    β_k = 1/s_{folds[k]}(τ_k), 1 where nothing is folded.
    """

    folds: tuple[int | None, ...]
    beta: Tensor

    @classmethod
    def build(cls, guidance: Guidance, plan: Plan, *, on_null: bool) -> FoldPlan:
        """The folds of a guidance-free model's decode under ``plan``; ``on_null``: the reference prompt
        is the model's ∅ (no negative prompt)."""
        folds = tuple(
            folded_reference(guidance, guidance_input=True, on_null=on_null, one_condition=True,
                             idle=[u or z for u, z in zip(s.unit, s.zero, strict=True)])
            for s in plan
        )  # fmt: skip
        beta = torch.ones(len(plan), dtype=torch.float64)
        for k, j in enumerate(folds):
            if j is not None:
                beta[k] = strength(plan.scales[k, j].double())
        return cls(folds, beta)

    def unused_from(self, plan: Plan, j: int) -> int:
        """The first step from which reference j's rows are never needed again: it runs there
        (:meth:`Plan.runs`) and is not folded."""
        needed = [k for k in range(len(plan)) if plan.runs(j, k) and self.folds[k] != j]
        return needed[-1] + 1 if needed else 0
