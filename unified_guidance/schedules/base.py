"""The schedule interface: a scale s(τ) over progress τ ∈ [0, 1], its jumps and where it is 1.

Concrete schedules are in :mod:`.scale`; :class:`Constant` and :class:`Product`
live here because every schedule can be built from a number and multiplied.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from ..core.numbers import check_number
from ..core.shapes import check_finite, check_unit_interval

Intervals = tuple[tuple[float, float], ...]


def _as_tau(tau: Tensor | float) -> Tensor:
    tau = torch.as_tensor(tau, dtype=torch.get_default_dtype() if not isinstance(tau, Tensor) else None)
    if not tau.is_floating_point():
        tau = tau.to(torch.get_default_dtype())
    check_unit_interval("tau", tau)
    return tau


class Schedule(ABC):
    """A scale schedule ``s(τ)``. Call it with a float or a tensor of progress values."""

    def __call__(self, tau: Tensor | float) -> Tensor:
        value = self.value(_as_tau(tau))
        check_finite(f"{type(self).__name__} scale", value)
        return value

    @abstractmethod
    def value(self, tau: Tensor) -> Tensor:
        """``s(τ)`` for a validated τ tensor."""

    def breakpoints(self) -> tuple[float, ...]:
        """Progress values in (0, 1) where the schedule is discontinuous."""
        return ()

    def unit_intervals(self) -> Intervals:
        """Closed τ-intervals on which ``s(τ) == 1`` exactly."""
        return ()

    def is_unit(self, tau: float) -> bool:
        """Whether ``s(τ) == 1`` is known to hold at ``tau`` from :meth:`unit_intervals`."""
        return any(lo <= tau <= hi for lo, hi in self.unit_intervals())

    def unit_from(self) -> float | None:
        """The smallest τ* with ``s ≡ 1`` on [τ*, 1], or ``None`` if there is none."""
        ends = [lo for lo, hi in self.unit_intervals() if hi >= 1.0]
        return min(ends) if ends else None

    def __mul__(self, other: Schedule | float) -> Schedule:
        return Product((self, as_schedule(other)))


def as_schedule(scale: Schedule | float) -> Schedule:
    """A number becomes :class:`Constant`; a schedule is returned as it is."""
    if isinstance(scale, Schedule):
        return scale
    if isinstance(scale, (int, float)) and not isinstance(scale, bool):
        return Constant(float(scale))
    raise TypeError(f"scale: expected a number or a Schedule, got {type(scale).__name__}")


def _check_range(lo_name: str, lo: float, hi_name: str, hi: float) -> None:
    for name, v in ((lo_name, lo), (hi_name, hi)):
        check_number(name, v)
        if not 0.0 <= v <= 1.0:
            raise ValueError(f"{name}: expected progress in [0, 1], got {v}")
    if lo > hi:
        raise ValueError(f"{hi_name}: expected {hi_name} ≥ {lo_name} = {lo}, got {hi}")


@dataclass(frozen=True)
class Constant(Schedule):
    """``s(τ) = scale``."""

    scale: float

    def __post_init__(self) -> None:
        check_number("scale", self.scale)

    def value(self, tau: Tensor) -> Tensor:
        return torch.full_like(tau, self.scale)

    def unit_intervals(self) -> Intervals:
        return ((0.0, 1.0),) if self.scale == 1.0 else ()


@dataclass(frozen=True)
class Product(Schedule):
    """The product of schedules, e.g. ``Interval(1.0…) * Linear(…)``."""

    factors: Sequence[Schedule] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        flat: list[Schedule] = []
        for f in self.factors:
            flat.extend(f.factors if isinstance(f, Product) else (as_schedule(f),))
        if not flat:
            raise ValueError("factors: expected at least one schedule, got none")
        object.__setattr__(self, "factors", tuple(flat))

    def value(self, tau: Tensor) -> Tensor:
        out = self.factors[0].value(tau)
        for f in self.factors[1:]:
            out = out * f.value(tau)
        return out

    def breakpoints(self) -> tuple[float, ...]:
        return tuple(sorted({b for f in self.factors for b in f.breakpoints()}))

    def unit_intervals(self) -> Intervals:
        # Where every factor is 1, the product is 1 (conservative: 2 × 0.5 is missed).
        common: list[tuple[float, float]] = [(0.0, 1.0)]
        for f in self.factors:
            common = [
                (max(a, c), min(b, d)) for a, b in common for c, d in f.unit_intervals() if max(a, c) <= min(b, d)
            ]
        return tuple(common)
