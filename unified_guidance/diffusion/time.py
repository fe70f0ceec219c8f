"""Time on a diffusion path: discrete training timesteps, sampling grids, ᾱ tables.

Continuous diffusion time runs from data (t = 0) to noise (t = 1); progress
τ = 1 − t. A discrete training timestep ``k ∈ {0, …, N − 1}`` (DDPM, Ho et al.,
arXiv 2006.11239) sits at ``t = (k + 1)/N``, so ``k = N − 1`` is pure noise and
``t = 0`` (k = −1) is the data itself.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..core.numbers import check_int
from ..core.path import Path, PathCoefficients


def discrete_to_time(k: Tensor | int, num_train_timesteps: int) -> Tensor:
    """Continuous time ``t = (k + 1)/N`` of discrete timestep ``k`` (any shape)."""
    _check_num_timesteps(num_train_timesteps)
    return (torch.as_tensor(k, dtype=torch.get_default_dtype()) + 1.0) / num_train_timesteps


def time_to_discrete(t: Tensor | float, num_train_timesteps: int) -> Tensor:
    """The (fractional) timestep ``k = t·N − 1`` of continuous time ``t``; fractional values are kept."""
    _check_num_timesteps(num_train_timesteps)
    return torch.as_tensor(t) * num_train_timesteps - 1.0


def _check_num_timesteps(n: int) -> None:
    check_int("num_train_timesteps", n, lo=1)


def default_t_max(path: Path, max_noise_level: float = 1e3) -> float:
    """The time sampling starts from: 1, unless the noise level σ_t/α_t there exceeds ``max_noise_level``.

    The cosine schedule reaches α = 0 at t = 1, where x0 = (x − σε)/α is undefined;
    it then starts where σ/α = ``max_noise_level`` (found by bisection), as the
    discrete schedule's clipping of β at 0.999 does.
    """

    def level(t: float) -> float:
        c = path.coefficients(torch.tensor(t, dtype=torch.float64))
        return float(c.sigma_t / c.alpha_t) if float(c.alpha_t) > 0 else float("inf")

    if level(1.0) <= max_noise_level:
        return 1.0
    lo, hi = 0.0, 1.0
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if level(mid) <= max_noise_level else (lo, mid)
    return lo


def time_grid(path: Path, steps: int, *, t_max: float | None = None) -> Tensor:
    """``steps + 1`` times from ``t_max`` down to 0, evenly spaced in t (float64).

    The model is evaluated at the first ``steps`` of them; the last step lands on
    the data (t = 0, σ = 0).
    """
    check_int("steps", steps, lo=1)
    t_max = default_t_max(path) if t_max is None else t_max
    if not 0.0 < t_max <= 1.0:
        raise ValueError(f"t_max: expected a time in (0, 1], got {t_max}")
    return torch.linspace(t_max, 0.0, steps + 1, dtype=torch.float64)


class AlphasCumprodPath(Path):
    """A variance-preserving path from a table of ᾱ_k (k = 0 … N − 1), as diffusers schedulers keep.

    Discrete timestep k sits at t = (k + 1)/N; log ᾱ is linear in k between table
    entries, with ᾱ = 1 at k = −1 (t = 0). α_t = √ᾱ, σ_t = √(1 − ᾱ).

    Args:
        alphas_cumprod: ``(N,)`` decreasing values in (0, 1].
    """

    def __init__(self, alphas_cumprod: Tensor) -> None:
        table = torch.as_tensor(alphas_cumprod, dtype=torch.float64).flatten()
        if table.numel() < 1 or not bool(((table > 0) & (table <= 1)).all()):
            raise ValueError("alphas_cumprod: expected a non-empty table of values in (0, 1]")
        rises = (table[1:] > table[:-1]).nonzero()
        if rises.numel():  # ᾱ_k = Π(1 − β_j) never grows; a rising table is reversed or not a ᾱ table
            k = int(rises[0, 0])
            raise ValueError(
                f"alphas_cumprod: expected non-increasing values (ᾱ_k = Π_j≤k (1 − β_j)), got an increase "
                f"from ᾱ[{k}] = {float(table[k]):g} to ᾱ[{k + 1}] = {float(table[k + 1]):g}"
            )
        self.num_train_timesteps = table.numel()
        self._log = torch.cat([torch.zeros(1, dtype=torch.float64), table.log()])  # knots at k = −1 … N − 1

    def _log_alphas_cumprod(self, t: Tensor) -> tuple[Tensor, Tensor]:
        """log ᾱ_t and d log ᾱ_t / dt by linear interpolation in k."""
        knots = self._log.to(t.device)
        j = (t.to(torch.float64) * self.num_train_timesteps).clamp(0, self.num_train_timesteps)
        j0 = j.floor().clamp(max=self.num_train_timesteps - 1).long()
        slope = knots[j0 + 1] - knots[j0]
        return knots[j0] + (j - j0) * slope, slope * self.num_train_timesteps

    def coefficients(self, t: Tensor) -> PathCoefficients:
        t = torch.as_tensor(t)
        t = t if t.is_floating_point() else t.to(torch.get_default_dtype())
        log_ab, d_log_ab = self._log_alphas_cumprod(t)
        alpha = torch.exp(0.5 * log_ab).to(t.dtype)
        sigma = torch.sqrt(-torch.expm1(log_ab)).to(t.dtype)
        d_alpha = (0.5 * alpha * d_log_ab).to(t.dtype)
        # σ² = 1 − α² ⇒ σ' = −α α'/σ (0/0 at t = 0 is taken as 0)
        d_sigma = torch.where(sigma > 0, -alpha * d_alpha / sigma.clamp_min(1e-30), torch.zeros_like(sigma))
        return PathCoefficients(alpha, sigma, d_alpha, d_sigma)

    def progress(self, t: Tensor) -> Tensor:
        return 1.0 - torch.as_tensor(t)

    def time(self, tau: Tensor) -> Tensor:
        return 1.0 - torch.as_tensor(tau)
