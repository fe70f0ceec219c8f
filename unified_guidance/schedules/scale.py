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
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from ..core.numbers import check_number
from .base import Constant, Intervals, Product, Schedule, _check_range, as_schedule
from .beta import Beta

__all__ = ["SCHEDULES", "Beta", "Constant", "Cosine", "Custom", "Decay", "Interval", "Linear", "Piecewise", "Power",
           "Product", "Schedule", "as_schedule", "schedule_from_name"]  # fmt: skip


@dataclass(frozen=True)
class _Ramp(Schedule):
    """Shared shape of the monotone ramps: ``start + (end − start)·f(r)`` with
    r = (τ − τ_start)/(τ_end − τ_start) clamped to [0, 1]."""

    start: float
    end: float
    tau_start: float = 0.0
    tau_end: float = 1.0

    def __post_init__(self) -> None:
        check_number("start", self.start)
        check_number("end", self.end)
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
        check_number("exponent", self.exponent)
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
        check_number("scale", self.scale)
        check_number("half_life", self.half_life)
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
            check_number("values", v)
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
        check_number("scale", self.scale)
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

    def __post_init__(self) -> None:
        if not callable(self.fn):
            raise TypeError(f"fn: expected a callable tau -> scale, got {type(self.fn).__name__}")
        # a string, a number or a tensor here would reach the adaptive solver's jump points garbled or not at all
        if isinstance(self.breakpoints_, (str, bytes)) or not isinstance(self.breakpoints_, Sequence):
            raise TypeError(
                f"breakpoints_: expected a list or tuple of progress values in [0, 1], got "
                f"{type(self.breakpoints_).__name__} {self.breakpoints_!r:.60}"
            )
        # (their range is checked where a sampler takes the schedule: plan.check_schedule)
        points = tuple(check_number(f"breakpoints_[{i}]", b) for i, b in enumerate(self.breakpoints_))
        object.__setattr__(self, "breakpoints_", points)

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


SCHEDULES: dict[str, type[Schedule]] = {
    "constant": Constant,
    "linear": Linear,
    "cosine": Cosine,
    "power": Power,
    "decay": Decay,
    "piecewise": Piecewise,
    "interval": Interval,
    "beta": Beta,
    "custom": Custom,
}


def schedule_from_name(name: str, **kwargs) -> Schedule:
    """Build a registered schedule by name; unknown names list the valid ones."""
    if name not in SCHEDULES:
        raise ValueError(f"name: unknown schedule {name!r}; valid schedules: {', '.join(SCHEDULES)}")
    return SCHEDULES[name](**kwargs)
