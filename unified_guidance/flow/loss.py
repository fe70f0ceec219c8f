"""The conditional flow-matching loss with condition dropout.

Conditional flow matching (Lipman et al., arXiv 2210.02747; Liu et al.,
arXiv 2209.03003): with data x1, noise x0 ~ N(0, I), t ~ p(t) and the path
``x_t = α_t·x1 + σ_t·x0`` (linear path: α_t = t, σ_t = 1 − t),

    L(θ) = E ‖u_θ(x_t, t, y') − (α'_t·x1 + σ'_t·x0)‖²       (linear path: target x1 − x0)

whose minimiser is the marginal velocity E[α'x1 + σ'x0 | x_t, y]. The condition
y' is y, replaced by ∅ with probability p per sample (Ho & Salimans,
arXiv 2207.12598), so one network learns both branches guidance needs.
Time samplers: uniform, and logit-normal ``t = sigmoid(m + s·n)``, n ~ N(0, 1)
(Esser et al., SD3, arXiv 2403.03206), which spends more samples mid-path.

``objective`` chooses what is compared (:mod:`unified_guidance.guidance.objectives`): the
velocity u_θ(x_t, t, y') with the target (``"cfg"``, the default), GFT's implicit conditional
β·u_θ(x_t, y', β) + (1 − β)·sg[u_θ(x_t, ∅, 1)], u_θ(x_t, y') with MG's target + w·sg[u_θ(y') − u_θ(∅)],
or a β-conditioned student with a frozen teacher's s·u_c − (s − 1)·u_u (distillation).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from ..core.conditions import drop_condition
from ..core.model import ConditionalModel
from ..core.numbers import check_number
from ..core.shapes import broadcast_like, check_batch
from ..guidance.objectives import Objective, bind, objective_pair


def _uniform(batch: int, generator: torch.Generator | None, **_: float) -> Tensor:
    return torch.rand(batch, generator=generator)


def _logit_normal(batch: int, generator: torch.Generator | None, *, loc: float = 0.0, scale: float = 1.0) -> Tensor:
    return torch.sigmoid(loc + scale * torch.randn(batch, generator=generator))


TIME_SAMPLERS: dict[str, Callable[..., Tensor]] = {"uniform": _uniform, "logit_normal": _logit_normal}


def sample_time(
    name: str, batch: int, *, generator: torch.Generator | None = None, loc: float = 0.0, scale: float = 1.0
) -> Tensor:
    """``(batch,)`` training times in [0, 1] from the sampler ``name`` (``loc``/``scale``: logit-normal's m, s)."""
    if name not in TIME_SAMPLERS:
        raise ValueError(f"time_sampler: unknown sampler {name!r}; valid samplers: {', '.join(TIME_SAMPLERS)}")
    if name == "logit_normal":
        return _logit_normal(batch, generator, loc=loc, scale=scale)
    return TIME_SAMPLERS[name](batch, generator)


def flow_matching_loss(
    model: ConditionalModel,
    x1: Tensor,
    cond: Tensor,
    *,
    p_uncond: float = 0.1,
    time_sampler: str = "uniform",
    loc: float = 0.0,
    scale: float = 1.0,
    generator: torch.Generator | None = None,
    objective: Objective | None = None,
    beta: Tensor | None = None,
) -> Tensor:
    """The mean conditional flow-matching loss over a batch of data ``x1`` ``(B, ...)`` with conditions ``(B, ...)``.

    ``model`` is a velocity :class:`ConditionalModel`; its path gives α_t, σ_t
    (and so which end is noise). Noise, times and dropout are drawn on the CPU
    from ``generator`` and moved to x1's device, so a seed gives the same batch anywhere;
    then, for GFT and distillation, the strengths ``beta`` ``(B,)`` unless given
    (``objective``: default ``Objective("cfg")``; rows whose condition is ∅ count as dropped).
    """
    if model.space != "velocity":
        raise ValueError(f"model: expected a velocity model (space 'velocity'), got space {model.space!r}")
    check_batch("x1", x1)  # NaN data would make the loss NaN, silently
    check_number("loc", loc)
    check_number("scale", scale)

    batch = x1.shape[0]
    predict, objective = bind(objective if objective is not None else Objective(), model)
    if p_uncond > 0.0 and not model.has_null:
        raise ValueError("p_uncond: condition dropout needs a model with a null condition (null_cond=...)")
    tau = sample_time(time_sampler, batch, generator=generator, loc=loc, scale=scale)
    t = model.path.time(tau).to(device=x1.device, dtype=x1.dtype) if model.path is not None else tau
    x0 = torch.randn(x1.shape, generator=generator).to(device=x1.device, dtype=x1.dtype)
    c = model.coefficients(t)
    a, s = broadcast_like(c.alpha_t, x1), broadcast_like(c.sigma_t, x1)
    da, ds = broadcast_like(c.d_alpha_t, x1), broadcast_like(c.d_sigma_t, x1)
    x_t = a * x1 + s * x0
    target = da * x1 + ds * x0
    if p_uncond > 0.0 and model.null_spec is not None:  # (checked above: a model without ∅ raised)
        cond, _ = drop_condition(cond, model.null_spec, p_uncond, generator=generator)
    null = model.null_condition(batch, device=x1.device) if objective.name != "cfg" else cond
    pred, target = objective_pair(objective, predict, x_t, t, cond, null, target, beta=beta, generator=generator)
    return (pred - target).pow(2).mean()
