"""β-shaped guidance over progress (β-CFG, Malarz et al., arXiv 2502.10574).

``s(τ) = 1 + (scale − 1)·f(τ)/f(τ*)``, f(τ) = τ^(a−1)(1 − τ)^(b−1) the (unnormalised)
Beta(a, b) density and τ* its mode, so the peak scale is ``scale``. With a, b > 1
guidance is off at both ends — no pull towards the class mean at pure noise, none on
fine detail at the end — and strongest in the middle, smoothly (no jump points for
adaptive solvers, unlike an interval). a = b = 1 is constant CFG. The paper also
normalises the guidance term's magnitude; that part is a rule, not a schedule, and is
not included here.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..core.numbers import check_number
from .base import Intervals, Schedule


@dataclass(frozen=True)
class Beta(Schedule):
    """``1 + (scale − 1)·Beta(a, b)(τ)/max Beta(a, b)``: peak ``scale`` at the mode (a − 1)/(a + b − 2)."""

    scale: float
    a: float = 2.0
    b: float = 2.0

    def __post_init__(self) -> None:
        check_number("scale", self.scale)
        for name in ("a", "b"):
            value = getattr(self, name)
            check_number(name, value)
            if value < 1.0:
                raise ValueError(f"{name}: expected a value ≥ 1 (a bounded, single-peaked shape), got {value}")

    @property
    def mode(self) -> float:
        """The progress of the peak scale."""
        return (self.a - 1.0) / (self.a + self.b - 2.0) if self.a + self.b > 2.0 else 0.5

    def _log_shape(self, tau: Tensor) -> Tensor:
        out = torch.zeros_like(tau)
        if self.a > 1.0:
            out = out + (self.a - 1.0) * torch.log(tau)
        if self.b > 1.0:
            out = out + (self.b - 1.0) * torch.log1p(-tau)
        return out

    def value(self, tau: Tensor) -> Tensor:
        peak = self._log_shape(torch.tensor(self.mode, dtype=torch.float64))
        shape = torch.exp(self._log_shape(tau) - peak.to(tau.dtype))  # log(0) = −inf → 0 at the ends
        return 1.0 + (self.scale - 1.0) * shape

    def unit_intervals(self) -> Intervals:
        if self.scale == 1.0:
            return ((0.0, 1.0),)
        ends = [(0.0, 0.0)] if self.a > 1.0 else []
        return tuple(ends + ([(1.0, 1.0)] if self.b > 1.0 else []))
