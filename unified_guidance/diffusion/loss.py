"""The denoising loss: ε-MSE on a variance-preserving path, optionally SNR-weighted.

``L = E_{t, x0, ε} w(t)·‖ε̂(α_t x0 + σ_t ε, t, y) − ε‖²`` (Ho et al., arXiv 2006.11239),
with the network's prediction converted to ε whatever it predicts (x0 or v).
Weightings of the ε-error, with SNR = α_t²/σ_t²:

* ``"none"``: w = 1 (DDPM's simple loss);
* ``"min_snr"``: w = min(SNR, γ)/SNR (Min-SNR-γ, Hang et al., arXiv 2303.09556);
* ``"x0"``: w = 1/SNR, which makes the loss the x0-MSE ‖x̂0 − x0‖².

``objective`` chooses what the ε-MSE compares (:mod:`unified_guidance.guidance.objectives`):
the model's ε̂ with ε (``"cfg"``, the default), GFT's implicit conditional
β·ε̂(x_t, c, β) + (1 − β)·sg[ε̂(x_t, ∅, 1)] with ε, ε̂(x_t, c) with MG's ε + w·sg[ε̂(c) − ε̂(∅)], or a
β-conditioned student with a frozen teacher's s·ε_c − (s − 1)·ε_u (distillation). Predictions in x0
or v are converted to ε first (every combination is affine, so the space does not change it).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from ..core.conditions import Cond
from ..core.model import ConditionalModel
from ..core.path import Path
from ..core.shapes import broadcast_like, check_batch, check_finite, check_unit_interval
from ..core.spaces import to_x0_eps
from ..guidance.objectives import Objective, bind, objective_pair
from .time import default_t_max

WEIGHTINGS: dict[str, Callable[[Tensor, float], Tensor]] = {
    "none": lambda snr, gamma: torch.ones_like(snr),
    "min_snr": lambda snr, gamma: snr.clamp(max=gamma) / snr,
    "x0": lambda snr, gamma: 1.0 / snr,
}


def q_sample(path: Path, x0: Tensor, t: Tensor, eps: Tensor) -> Tensor:
    """The forward process ``x_t = α_t·x0 + σ_t·ε``; x0, ε ``(B, ...)``, t ``(B,)`` or scalar."""
    c = path.coefficients(t)
    return broadcast_like(c.alpha_t, x0) * x0 + broadcast_like(c.sigma_t, x0) * eps


def sample_times(path: Path, batch: int, *, generator: torch.Generator | None = None, t_min: float = 1e-3) -> Tensor:
    """Training times ``(B,)`` uniform on [t_min, t_max] (t_max from :func:`~.time.default_t_max`)."""
    t_max = default_t_max(path)
    u = torch.rand(batch, generator=generator, dtype=torch.get_default_dtype())
    return t_min + (t_max - t_min) * u


def diffusion_loss(
    model: ConditionalModel,
    x0: Tensor,
    cond: Cond | None,
    *,
    t: Tensor | None = None,
    eps: Tensor | None = None,
    generator: torch.Generator | None = None,
    weighting: str = "none",
    snr_gamma: float = 5.0,
    objective: Objective | None = None,
    beta: Tensor | None = None,
) -> Tensor:
    """The weighted ε-MSE of ``model`` on clean data ``x0`` ``(B, ...)`` with condition ``cond``.

    ``t`` ``(B,)`` and ``eps`` (like x0) are drawn with ``generator`` unless given, then
    (GFT, distillation) the strengths ``beta`` ``(B,)``. ``objective``: what is compared
    (default ``Objective("cfg")``: ε̂ with ε); rows of ``cond`` equal to ∅ count as dropped.
    Returns a scalar: the batch mean of ``w(t)·mean((ε̂ − ε)²)`` per sample.
    """
    if weighting not in WEIGHTINGS:
        raise ValueError(f"weighting: expected one of {', '.join(WEIGHTINGS)}, got {weighting!r}")
    if model.path is None:
        raise ValueError("model: expected a diffusion model with a path, got one without")
    check_batch("x0", x0)  # NaN data, given noise or a time off the path would make a NaN or wrong loss
    if t is not None:
        check_unit_interval("t", t)  # (drawn times lie in [t_min, t_max])
    if eps is not None:
        check_finite("eps", eps)
    batch = x0.shape[0]
    if t is None:
        t = sample_times(model.path, batch, generator=generator)
    t = t.to(device=x0.device, dtype=x0.dtype)
    if t.shape != (batch,):
        raise ValueError(f"t: expected shape ({batch},), got {tuple(t.shape)}")
    if eps is None:
        eps = torch.randn(x0.shape, generator=generator, dtype=x0.dtype).to(x0.device)
    elif eps.shape != x0.shape:
        raise ValueError(f"eps: expected the shape of x0 {tuple(x0.shape)}, got {tuple(eps.shape)}")
    objective = objective if objective is not None else Objective()
    predict, objective = bind(objective, model, _to_eps)
    x_t = q_sample(model.path, x0, t, eps)
    null = model.null_condition(batch, device=x0.device) if objective.name != "cfg" or cond is None else cond
    cond = null if cond is None else cond
    eps_hat, target = objective_pair(objective, predict, x_t, t, cond, null, eps, beta=beta, generator=generator)
    per_sample = (eps_hat - target).pow(2).flatten(1).mean(dim=1)
    coeffs = model.coefficients(t)
    snr = (coeffs.alpha_t / coeffs.sigma_t).pow(2)
    return (WEIGHTINGS[weighting](snr, snr_gamma) * per_sample).mean()


def _to_eps(model: ConditionalModel, out: Tensor, x_t: Tensor, t: Tensor) -> Tensor:
    """A diffusion model's output as ε (its space and path's coefficients at t)."""
    return to_x0_eps(out, model.space, x_t, model.coefficients(t))[1]
