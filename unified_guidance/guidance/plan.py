"""The plan of a generation: every reference's scale at each call, and what each call skips.

A sampler that knows its progress values τ_0 … τ_{N−1} in advance (a fixed time grid, the
token positions of a decode) builds one :class:`Plan` before its loop: reference j is not run
at call i where its scale w_j(τ_i) is exactly 1 (g_j = c) or its rule outputs zero there
(g_j = 0), and once that holds to the end, a decoder drops the reference's rows for good
(:meth:`Plan.unused_from`). Deciding this on the host before the loop means no read-back per
call, so a guided call compiles into one graph. The guided model
(:meth:`~.engine.GuidedModel.plan`) and autoregressive decoding use the same plan.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import Tensor

from ..core.checks import NonFiniteError, nonfinite_message
from ..core.shapes import check_unit_interval
from ..schedules.scale import Schedule
from .spec import Guidance, Reference


@dataclass(frozen=True)
class StepPlan:
    """What one call skips, known before it runs: ``unit[j]`` — reference j's scale is exactly 1;
    ``zero[j]`` — reference j's rule outputs zero."""

    unit: tuple[bool, ...]
    zero: tuple[bool, ...]


@dataclass(frozen=True, eq=False)
class Plan:
    """Each reference's scale and skips at the progress values of a generation's calls.

    ``taus`` ``(N,)``; ``scales`` ``(N, J)``: w_j(τ_i); ``unit`` and ``zero`` ``(N, J)`` bool.
    ``plan[i]`` is call i's :class:`StepPlan`.
    """

    taus: Tensor
    scales: Tensor
    unit: Tensor
    zero: Tensor
    steps: tuple[StepPlan, ...]  # plan[i], made on the host once: a compiled call reads no tensor

    @classmethod
    def build(cls, guidance: Guidance, taus: Tensor) -> Plan:
        """The plan of ``guidance`` at progress values ``taus`` ``(N,)`` in [0, 1]."""
        refs = guidance.references
        for r in refs:
            check_schedule(r.schedule)
        check_unit_interval("tau", taus)
        scales = torch.stack([_scales(r, taus) for r in refs], dim=1)
        zero = torch.tensor(
            [[r.rule.zero_output(taus[i : i + 1]) for r in refs] for i in range(len(taus))], dtype=torch.bool
        ).reshape(len(taus), len(refs))
        unit = scales == 1
        steps = tuple(StepPlan(tuple(u), tuple(z)) for u, z in zip(unit.tolist(), zero.tolist(), strict=True))
        return cls(taus, scales, unit, zero, steps)

    def __len__(self) -> int:
        return len(self.taus)

    def __getitem__(self, i: int) -> StepPlan:
        return self.steps[i]

    def __iter__(self) -> Iterator[StepPlan]:
        return iter(self.steps)

    def unused_from(self, j: int) -> int:
        """The first call from which reference j is never run again (its scale stays 1 or its rule
        outputs zero to the end): N when it runs at the last call, 0 when it never runs."""
        idle = [s.unit[j] or s.zero[j] for s in self.steps]
        k = len(idle)
        while k > 0 and idle[k - 1]:
            k -= 1
        return k

    def runs(self, j: int, i: int) -> bool:
        """Whether reference j runs at call i."""
        return not (self.steps[i].unit[j] or self.steps[i].zero[j])


def _scales(ref: Reference, taus: Tensor) -> Tensor:
    """w(τ) of ``ref`` at every τ, refused (as the guided call would) where it is not finite."""
    scales = ref.schedule.value(taus)
    if not bool(torch.isfinite(scales).all()):
        raise NonFiniteError(nonfinite_message("scale", scales, f"from the {type(ref.schedule).__name__} schedule"))
    return scales


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


def check_unit_intervals(schedule: Schedule, taus: Tensor, scales: Tensor) -> None:
    """Raise if ``schedule`` declares s = 1 on an interval (``unit_intervals``) where its values at
    ``taus`` ``(N,)`` (``scales``) say otherwise: a schedule that misstates itself would have callers
    that trust the declaration (an adaptive solver's jumps, a decoder) run those steps unguided.
    ``taus`` in float64: a float32 τ rounds onto an interval's open end."""
    for lo, hi in schedule.unit_intervals():
        inside = (taus >= lo) & (taus <= hi) & (scales != 1)
        if bool(inside.any()):
            k = int(inside.nonzero()[0, 0])
            raise ValueError(
                f"guidance: the {type(schedule).__name__} schedule declares s = 1 on [{lo:g}, {hi:g}] "
                f"(unit_intervals) but gives s = {float(scales[k]):g} at τ = {float(taus[k]):g}"
            )
