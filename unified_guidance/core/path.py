"""Affine probability paths ``x_t = α_t·x0 + σ_t·ε`` and their coefficients.

Diffusion noise schedules and flow-matching paths are both such paths; they
differ in which end is noise and in how their time maps to progress τ
(τ = 0 at the start of generation, pure noise; τ = 1 at the end, clean data).
Implementations live in :mod:`unified_guidance.schedules.noise`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class PathCoefficients:
    """``α_t``, ``σ_t`` and their time derivatives, each a scalar or ``(B,)`` tensor."""

    alpha_t: Tensor
    sigma_t: Tensor
    d_alpha_t: Tensor
    d_sigma_t: Tensor


class Path(ABC):
    """A path ``x_t = α_t·x0 + σ_t·ε`` in the path's own time ``t``.

    Subclasses give :meth:`coefficients` and :meth:`progress`; the rest follows.
    """

    @abstractmethod
    def coefficients(self, t: Tensor) -> PathCoefficients:
        """α_t, σ_t, dα_t/dt, dσ_t/dt at ``t`` (scalar or ``(B,)``)."""

    @abstractmethod
    def progress(self, t: Tensor) -> Tensor:
        """Progress τ ∈ [0, 1] of time ``t``: 0 at pure noise, 1 at clean data."""

    @abstractmethod
    def time(self, tau: Tensor) -> Tensor:
        """The inverse of :meth:`progress`: the path time at progress ``tau``."""

    def noise_level(self, t: Tensor) -> Tensor:
        """The noise level σ_t/α_t (EDM's σ; Kynkäänniemi et al. state intervals in it)."""
        c = self.coefficients(t)
        return c.sigma_t / c.alpha_t

    def log_snr(self, t: Tensor) -> Tensor:
        """log(α_t²/σ_t²)."""
        c = self.coefficients(t)
        return 2.0 * (torch.log(c.alpha_t) - torch.log(c.sigma_t))
