"""Noise schedules and flow paths: the :class:`~unified_guidance.core.path.Path` implementations.

========================  ==================  =====================  ===========
path                      α_t                 σ_t                    progress τ
========================  ==================  =====================  ===========
LinearBetaSchedule (VP)   exp(−¼t²Δβ − ½tβ₀)  √(1 − α_t²)            1 − t
CosineSchedule (VP)       f(t)/f(0)           √(1 − α_t²)            1 − t
LinearFlowPath            t                   1 − t                  t
RectifiedFlowPath         1 − t               t                      1 − t
========================  ==================  =====================  ===========

Diffusion time runs from data (t = 0) to noise (t = 1); the linear flow path
runs from noise (t = 0) to data (t = 1); the rectified-flow convention puts
noise at σ = t = 1. Progress τ always runs from noise (0) to data (1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ..core.numbers import check_number
from ..core.path import Path, PathCoefficients
from ..core.shapes import check_finite


def _as_time(t: Tensor | float) -> Tensor:
    t = torch.as_tensor(t)
    return t if t.is_floating_point() else t.to(torch.get_default_dtype())


class _VPSchedule(Path):
    """Variance preserving: σ_t = √(1 − α_t²); diffusion time t = 0 (data) … 1 (noise)."""

    def log_alpha(self, t: Tensor) -> tuple[Tensor, Tensor]:
        """log α_t and its derivative d log α_t / dt."""
        raise NotImplementedError

    def coefficients(self, t: Tensor) -> PathCoefficients:
        t = _as_time(t)
        log_alpha, d_log_alpha = self.log_alpha(t)
        alpha = torch.exp(log_alpha)
        # log α may round to a tiny positive number at t = 0: clamp, so σ is 0 there, not NaN.
        sigma = torch.sqrt((-torch.expm1(2.0 * log_alpha)).clamp(min=0.0))
        d_alpha = alpha * d_log_alpha
        # dσ/dt = −α·α'/σ is 0/0 at t = 0; its limit for these schedules is finite, and 0 is what samplers use.
        d_sigma = torch.where(sigma > 0, -alpha * d_alpha / sigma.clamp(min=torch.finfo(sigma.dtype).tiny), 0.0)
        return PathCoefficients(alpha, sigma, d_alpha, d_sigma)

    def progress(self, t: Tensor) -> Tensor:
        return 1.0 - _as_time(t)

    def time(self, tau: Tensor) -> Tensor:
        return 1.0 - _as_time(tau)


@dataclass(frozen=True)
class LinearBetaSchedule(_VPSchedule):
    """DDPM's linear β (Ho et al. 2020) in continuous time (Song et al., arXiv 2011.13456).

    β(t) = β₀ + t(β₁ − β₀); α_t = exp(−¼t²(β₁ − β₀) − ½tβ₀). The defaults match
    1000 discrete steps with β from 1e-4 to 0.02 (t = i/1000).
    """

    beta_min: float = 0.1
    beta_max: float = 20.0

    def __post_init__(self) -> None:
        for name in ("beta_min", "beta_max"):
            check_number(name, getattr(self, name), lo=0.0)
        if self.beta_max < self.beta_min or self.beta_max == 0:
            raise ValueError(
                f"beta_max: expected beta_max ≥ beta_min = {self.beta_min} and > 0 (β ≡ 0 adds no noise), "
                f"got {self.beta_max}"
            )

    def log_alpha(self, t: Tensor) -> tuple[Tensor, Tensor]:
        delta = self.beta_max - self.beta_min
        return -0.25 * t * t * delta - 0.5 * t * self.beta_min, -0.5 * (self.beta_min + t * delta)


@dataclass(frozen=True)
class CosineSchedule(_VPSchedule):
    """Nichol & Dhariwal's cosine schedule (arXiv 2102.09672) in continuous time.

    α_t = f(t)/f(0), f(t) = cos(((t + s)/(1 + s))·π/2). α_t reaches 0 at t = 1, so
    samplers start a little before it (the discrete schedule clips β at 0.999).
    """

    s: float = 0.008

    def log_alpha(self, t: Tensor) -> tuple[Tensor, Tensor]:
        c = math.pi / (2.0 * (1.0 + self.s))
        angle = (t + self.s) * c
        log_alpha = torch.log(torch.cos(angle)) - math.log(math.cos(self.s * c))
        return log_alpha, -c * torch.tan(angle)


@dataclass(frozen=True)
class LinearFlowPath(Path):
    """The linear flow-matching path with noise at t = 0: x_t = t·x1 + (1 − t)·x0.

    Here the data x1 plays the role of "x0" of the conversions (α_t = t) and the
    noise that of ε (σ_t = 1 − t); the velocity is x1 − x0. τ = t.
    """

    def coefficients(self, t: Tensor) -> PathCoefficients:
        t = _as_time(t)
        one = torch.ones_like(t)
        return PathCoefficients(t, 1.0 - t, one, -one)

    def progress(self, t: Tensor) -> Tensor:
        return _as_time(t)

    def time(self, tau: Tensor) -> Tensor:
        return _as_time(tau)


@dataclass(frozen=True)
class RectifiedFlowPath(Path):
    """The rectified-flow convention with noise at σ = 1: x = (1 − σ)·x0 + σ·ε, time t = σ.

    The velocity dx/dσ = ε − x0; τ = 1 − σ.
    """

    def coefficients(self, t: Tensor) -> PathCoefficients:
        t = _as_time(t)
        one = torch.ones_like(t)
        return PathCoefficients(1.0 - t, t, -one, one)

    def progress(self, t: Tensor) -> Tensor:
        return 1.0 - _as_time(t)

    def time(self, tau: Tensor) -> Tensor:
        return 1.0 - _as_time(tau)


def sigma_interval_to_progress(path: Path, sigma_lo: float, sigma_hi: float) -> tuple[float, float]:
    """Turn a noise-level interval (σ_lo, σ_hi], as papers state it, into a τ interval.

    The noise level is σ_t/α_t (EDM's σ), which falls monotonically as τ rises,
    so σ = σ_hi gives the interval's start τ_lo and σ = σ_lo its end τ_hi.
    Kynkäänniemi et al. (arXiv 2404.07724) use (0.28, 5.42] for EDM2-XXL.
    Solved by bisection in float64 to 1e-12 in τ.
    """
    check_finite("sigma_lo", sigma_lo)
    check_finite("sigma_hi", sigma_hi)
    if not 0.0 <= sigma_lo < sigma_hi:
        raise ValueError(f"sigma_hi: expected 0 ≤ sigma_lo < sigma_hi, got sigma_lo={sigma_lo}, sigma_hi={sigma_hi}")

    def level(tau: float) -> float:
        t = path.time(torch.tensor(tau, dtype=torch.float64))
        c = path.coefficients(t)
        return float(c.sigma_t / c.alpha_t)

    def solve(sigma: float) -> float:
        lo, hi = 0.0, 1.0
        if level(lo) <= sigma:
            return 0.0
        if level(hi) >= sigma:
            return 1.0
        while hi - lo > 1e-12:
            mid = 0.5 * (lo + hi)
            lo, hi = (mid, hi) if level(mid) > sigma else (lo, mid)
        return 0.5 * (lo + hi)

    return solve(sigma_hi), solve(sigma_lo)


PATHS: dict[str, type[Path]] = {
    "linear_beta": LinearBetaSchedule,
    "cosine": CosineSchedule,
    "linear_flow": LinearFlowPath,
    "rectified_flow": RectifiedFlowPath,
}
