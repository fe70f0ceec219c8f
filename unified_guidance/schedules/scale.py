"""Guidance scale as a function of progress τ ∈ [0, 1] (never a step index).

τ = 0 is the start of generation (pure noise, first new token), τ = 1 the end.
Because a schedule only sees τ, the same schedule gives the same guidance under
any step count and under adaptive ODE solvers. Every schedule exposes

* :meth:`Schedule.breakpoints`: τ where it jumps (adaptive solvers need these as jump points);
* :meth:`Schedule.unit_intervals`: closed τ-intervals on which it equals exactly 1
  (there the reference forward can be skipped; an autoregressive decoder drops the
  reference rows once the rest of generation is such an interval).

Shapes of several schedules follow Wang et al., "Analysis of classifier-free
guidance weight schedulers" (arXiv 2404.13040); the interval is Kynkäänniemi et
al. (arXiv 2404.07724).
"""

from __future__ import annotations

import itertools
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

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


def _check_number(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name}: expected a number, got {type(value).__name__}")
    check_finite(name, float(value))


def _check_range(lo_name: str, lo: float, hi_name: str, hi: float) -> None:
    for name, v in ((lo_name, lo), (hi_name, hi)):
        _check_number(name, v)
        if not 0.0 <= v <= 1.0:
            raise ValueError(f"{name}: expected progress in [0, 1], got {v}")
    if lo > hi:
        raise ValueError(f"{hi_name}: expected {hi_name} ≥ {lo_name} = {lo}, got {hi}")


@dataclass(frozen=True)
class Constant(Schedule):
    """``s(τ) = scale``."""

    scale: float

    def __post_init__(self) -> None:
        _check_number("scale", self.scale)

    def value(self, tau: Tensor) -> Tensor:
        return torch.full_like(tau, self.scale)

    def unit_intervals(self) -> Intervals:
        return ((0.0, 1.0),) if self.scale == 1.0 else ()


@dataclass(frozen=True)
class _Ramp(Schedule):
    """Shared shape of the monotone ramps: ``start + (end − start)·f(r)`` with
    r = (τ − τ_start)/(τ_end − τ_start) clamped to [0, 1]."""

    start: float
    end: float
    tau_start: float = 0.0
    tau_end: float = 1.0

    def __post_init__(self) -> None:
        _check_number("start", self.start)
        _check_number("end", self.end)
        _check_range("tau_start", self.tau_start, "tau_end", self.tau_end)
        if self.tau_start == self.tau_end:
            raise ValueError(f"tau_end: expected tau_end > tau_start = {self.tau_start}, got {self.tau_end}")

    def shape(self, r: Tensor) -> Tensor:
        raise NotImplementedError

    def value(self, tau: Tensor) -> Tensor:
        r = ((tau - self.tau_start) / (self.tau_end - self.tau_start)).clamp(0.0, 1.0)
        return self.start + (self.end - self.start) * self.shape(r)

    def unit_intervals(self) -> Intervals:
        out = []
        if self.start == 1.0:
            out.append((0.0, self.tau_start))
        if self.end == 1.0:
            out.append((self.tau_end, 1.0))
        if self.start == self.end == 1.0:
            out = [(0.0, 1.0)]
        return tuple(out)


@dataclass(frozen=True)
class Linear(_Ramp):
    """Linear ramp from ``start`` (at ``tau_start``) to ``end`` (at ``tau_end``), flat outside.

    ``Linear(1, 7)`` rises as generation proceeds (the increasing schedule Wang et
    al. found to work well); ``Linear(7, 1)`` decays.
    """

    def shape(self, r: Tensor) -> Tensor:
        return r


@dataclass(frozen=True)
class Cosine(_Ramp):
    """Half-cosine ramp: ``start + (end − start)·(1 − cos(πr))/2``."""

    def shape(self, r: Tensor) -> Tensor:
        return (1.0 - torch.cos(math.pi * r)) / 2.0


@dataclass(frozen=True)
class Power(_Ramp):
    """Power ramp: ``start + (end − start)·r^exponent``."""

    exponent: float = 2.0

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_number("exponent", self.exponent)
        if self.exponent <= 0:
            raise ValueError(f"exponent: expected a positive number, got {self.exponent}")

    def shape(self, r: Tensor) -> Tensor:
        return r**self.exponent


@dataclass(frozen=True)
class Decay(Schedule):
    """Exponential decay towards 1: ``s(τ) = 1 + (scale − 1)·2^(−τ/half_life)``.

    Strong guidance early (layout, class) and a gentle finish (texture).
    """

    scale: float
    half_life: float = 0.25

    def __post_init__(self) -> None:
        _check_number("scale", self.scale)
        _check_number("half_life", self.half_life)
        if self.half_life <= 0:
            raise ValueError(f"half_life: expected a positive number, got {self.half_life}")

    def value(self, tau: Tensor) -> Tensor:
        return 1.0 + (self.scale - 1.0) * torch.exp2(-tau / self.half_life)

    def unit_intervals(self) -> Intervals:
        return ((0.0, 1.0),) if self.scale == 1.0 else ()


@dataclass(frozen=True)
class Piecewise(Schedule):
    """Step function: ``values[i]`` on [boundaries[i−1], boundaries[i]).

    ``Piecewise(values=(1, 5, 1), boundaries=(0.2, 0.8))`` is 1 before τ = 0.2,
    5 until τ = 0.8, and 1 after (the last piece includes τ = 1).
    """

    values: tuple[float, ...]
    boundaries: tuple[float, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "values", tuple(float(v) for v in self.values))
        object.__setattr__(self, "boundaries", tuple(float(b) for b in self.boundaries))
        if len(self.values) != len(self.boundaries) + 1:
            raise ValueError(
                f"values: expected len(boundaries) + 1 = {len(self.boundaries) + 1} values, got {len(self.values)}"
            )
        for v in self.values:
            _check_number("values", v)
        edges = (0.0, *self.boundaries, 1.0)
        if any(b < a for a, b in itertools.pairwise(edges)) or not all(0 <= b <= 1 for b in self.boundaries):
            raise ValueError(f"boundaries: expected increasing progress values in [0, 1], got {self.boundaries}")

    def value(self, tau: Tensor) -> Tensor:
        idx = torch.bucketize(tau, torch.tensor(self.boundaries, dtype=tau.dtype, device=tau.device), right=True)
        return torch.tensor(self.values, dtype=tau.dtype, device=tau.device)[idx]

    def breakpoints(self) -> tuple[float, ...]:
        return tuple(b for i, b in enumerate(self.boundaries) if 0.0 < b < 1.0 and self.values[i] != self.values[i + 1])

    def unit_intervals(self) -> Intervals:
        edges = (0.0, *self.boundaries, 1.0)
        out: list[tuple[float, float]] = []
        for i, v in enumerate(self.values):
            if v != 1.0 or edges[i] == edges[i + 1]:
                continue
            if out and out[-1][1] == edges[i]:
                out[-1] = (out[-1][0], edges[i + 1])
            else:
                out.append((edges[i], edges[i + 1]))
        return tuple(out)


@dataclass(frozen=True)
class Interval(Schedule):
    """Guidance only in an interval (Kynkäänniemi et al., arXiv 2404.07724).

    ``s(τ) = scale`` for ``lo ≤ τ ≤ hi``, else 1 — and where it is 1 the reference
    forward is skipped. The paper states the interval in noise levels; see
    :func:`~unified_guidance.schedules.noise.sigma_interval_to_progress`.
    """

    scale: float
    lo: float = 0.0
    hi: float = 1.0

    def __post_init__(self) -> None:
        _check_number("scale", self.scale)
        _check_range("lo", self.lo, "hi", self.hi)

    def value(self, tau: Tensor) -> Tensor:
        inside = (tau >= self.lo) & (tau <= self.hi)
        return torch.where(inside, torch.full_like(tau, self.scale), torch.ones_like(tau))

    def breakpoints(self) -> tuple[float, ...]:
        if self.scale == 1.0:
            return ()
        return tuple(b for b in (self.lo, self.hi) if 0.0 < b < 1.0)

    def unit_intervals(self) -> Intervals:
        if self.scale == 1.0:
            return ((0.0, 1.0),)
        # The open ends (τ < lo, τ > hi) are reported closed at a float's distance.
        out = []
        if self.lo > 0.0:
            out.append((0.0, math.nextafter(self.lo, -1.0)))
        if self.hi < 1.0:
            out.append((math.nextafter(self.hi, 2.0), 1.0))
        return tuple(out)


@dataclass(frozen=True)
class Custom(Schedule):
    """Any callable ``fn(tau) -> scale`` on tensors, with what it knows of itself.

    Args:
        fn: maps a τ tensor to a scale tensor of the same shape.
        breakpoints_: its discontinuities in (0, 1) (declare them: adaptive solvers need them).
        unit_intervals_: closed intervals where it equals 1 exactly (optional).
    """

    fn: Callable[[Tensor], Tensor]
    breakpoints_: tuple[float, ...] = ()
    unit_intervals_: Intervals = ()

    def value(self, tau: Tensor) -> Tensor:
        out = torch.as_tensor(self.fn(tau), dtype=tau.dtype, device=tau.device)
        if out.shape != tau.shape:
            out = out.expand(tau.shape) if out.ndim == 0 else out
        if out.shape != tau.shape:
            raise ValueError(f"fn: expected a scale of shape {tuple(tau.shape)} (that of tau), got {tuple(out.shape)}")
        return out

    def breakpoints(self) -> tuple[float, ...]:
        return tuple(self.breakpoints_)

    def unit_intervals(self) -> Intervals:
        return tuple(self.unit_intervals_)


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


SCHEDULES: dict[str, type[Schedule]] = {
    "constant": Constant,
    "linear": Linear,
    "cosine": Cosine,
    "power": Power,
    "decay": Decay,
    "piecewise": Piecewise,
    "interval": Interval,
    "custom": Custom,
}


def schedule_from_name(name: str, **kwargs) -> Schedule:
    """Build a registered schedule by name; unknown names list the valid ones."""
    if name not in SCHEDULES:
        raise ValueError(f"name: unknown schedule {name!r}; valid schedules: {', '.join(SCHEDULES)}")
    return SCHEDULES[name](**kwargs)
