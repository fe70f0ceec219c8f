"""Token progress τ and guidance scale plans for decoding.

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

Once the scale stays exactly 1 for the rest of the generation (``Schedule.unit_from()``),
the decoder drops the reference rows from the batch and the KV cache.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

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


def check_schedule(schedule: Schedule) -> None:
    """Raise unless every breakpoint and unit interval of ``schedule`` lies in progress [0, 1].

    A schedule written for step indices (``breakpoints_=(5, 20)``) would otherwise be
    silently constant over the whole generation.
    """
    if not isinstance(schedule, Schedule):
        raise TypeError(f"guidance: expected a number, a Schedule or a Guidance, got {type(schedule).__name__}")
    for b in schedule.breakpoints():
        if not 0.0 <= b <= 1.0:
            raise ValueError(f"guidance: expected schedule breakpoints in progress [0, 1], got {b}")
    for lo, hi in schedule.unit_intervals():
        if not (0.0 <= lo <= hi <= 1.0):
            raise ValueError(f"guidance: expected schedule unit intervals inside progress [0, 1], got ({lo}, {hi})")


def _check_unit_intervals(schedule: Schedule, taus: Tensor, scales: Tensor) -> None:
    """A schedule's declared unit intervals must hold at every token inside them: the decoder
    drops the reference rows there, so a contradiction would decode those tokens unguided."""
    for lo, hi in schedule.unit_intervals():
        inside = (taus >= lo) & (taus <= hi) & (scales != 1)
        if bool(inside.any()):
            k = int(inside.nonzero()[0, 0])
            raise ValueError(
                f"guidance: the {type(schedule).__name__} schedule declares s = 1 on [{lo:g}, {hi:g}] "
                f"(unit_intervals) but gives s = {float(scales[k]):g} at τ = {float(taus[k]):g}"
            )


@dataclass(frozen=True)
class ScalePlan:
    """The scale of every new token and the step from which the reference rows are dropped.

    ``scales`` ``(N,)``; ``taus`` ``(N,)``; ``drop_at``: the first step from which the scale
    is 1 to the end (N when never; 0 when guidance never acts).
    """

    taus: Tensor
    scales: Tensor
    drop_at: int

    @classmethod
    def build(cls, schedule: Schedule, max_new_tokens: int, dtype: torch.dtype = torch.float64) -> ScalePlan:
        check_schedule(schedule)
        taus = torch.tensor([token_progress(k, max_new_tokens) for k in range(max_new_tokens)], dtype=dtype)
        scales = schedule(taus)
        _check_unit_intervals(schedule, taus, scales)
        start = schedule.unit_from()
        drop_at = max_new_tokens
        if start is not None:
            drop_at = next((k for k in range(max_new_tokens) if float(taus[k]) >= start), max_new_tokens)
        # Trailing scales of exactly 1 that the schedule did not declare also free the reference rows.
        while drop_at > 0 and float(scales[drop_at - 1]) == 1.0:
            drop_at -= 1
        return cls(taus, scales, drop_at)

    def guided(self, step: int) -> bool:
        """Whether the reference rows are still in the batch at ``step``."""
        return step < self.drop_at
