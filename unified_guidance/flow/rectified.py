"""Rectified-CFG++ (Saini, Gupta & Bovik, arXiv 2510.07631): guidance as a predictor–corrector step.

CFG's extrapolated velocity pushes a deterministic flow off the learned
trajectories, and no re-noising pulls it back (CFG++, arXiv 2406.08070, does that
for diffusion samplers). Rectified-CFG++ anchors each step on the conditional
velocity and applies guidance as a correction evaluated at a point on the
conditional path, with a weight that vanishes at the data end. For a step
t → t + h (progress τ̃ at the midpoint):

    v_c   = v(x_t, t | y)                          # predictor velocity (B rows)
    x̃     = x_t + (h/2)·v_c                        # half a conditional step
    g̃, c̃  = guided(x̃, t + h/2), v(x̃, t + h/2 | y)  # guidance rule at x̃ (2B rows)
    x_t+h = x_t + h·(v_c + (1 − τ̃)^γ·(g̃ − c̃))

With CFG, g̃ − c̃ = (s − 1)(c̃ − ũ): the paper's interpolative correction with
λ = s − 1 and its decay (1 − τ)^γ in this library's progress (τ = 1 at data).
Where s = 1 the correction is 0, the reference is skipped and the step is Euler
on the conditional field. Guidance's diffusers-style guider API cannot express
this (it sees one point per step), which is why it lives here at the solver.
"""

from __future__ import annotations

import itertools

import torch
from torch import Tensor

from ..core.conditions import Cond, Conditions
from ..core.model import ConditionalModel
from ..guidance.engine import Guidance, GuidedModel
from ..schedules.scale import Schedule
from .sampler import FlowStats


def rectified_cfgpp(
    model: ConditionalModel,
    guidance: Guidance | Schedule | float,
    x0: Tensor,
    cond: Cond | Conditions | None = None,
    *,
    steps: int,
    gamma: float = 1.0,
    t_span: tuple[float, float] | None = None,
) -> tuple[Tensor, FlowStats]:
    """Integrate a velocity model from noise ``x0`` ``(B, ...)`` to data with Rectified-CFG++ steps.

    Args:
        model: a velocity :class:`ConditionalModel` with a path.
        guidance: a :class:`Guidance` (its rule gives g̃; CFG is the paper's), a schedule or a scale.
        x0: the noise ``(B, ...)`` at the path's noise end.
        cond: the condition, :class:`Conditions`, or ``None`` for ∅.
        steps: uniform steps from the noise end to the data end (3B forward rows each where s ≠ 1).
        gamma: exponent γ ≥ 0 of the correction's decay (1 − τ)^γ; 0 keeps it constant.
        t_span: path times (start, end); default the path's noise and data ends.

    Returns:
        the samples ``(B, ...)`` and the cost (``nfe`` counts guided-model evaluations, two a step).
    """
    if model.space != "velocity" or model.path is None:
        raise ValueError(f"model: expected a velocity model with a path, got space {model.space!r}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps: expected a positive int, got {steps!r}")
    if not gamma >= 0.0:
        raise ValueError(f"gamma: expected a value ≥ 0, got {gamma}")
    guidance = guidance if isinstance(guidance, Guidance) else Guidance(scale=guidance)
    guided, conditional = GuidedModel(model, guidance), GuidedModel(model, Guidance(scale=1.0))
    path = model.path
    if t_span is None:
        t_span = (float(path.time(torch.tensor(0.0))), float(path.time(torch.tensor(1.0))))
    grid = torch.linspace(t_span[0], t_span[1], steps + 1, dtype=torch.float64).tolist()
    before = model.stats
    guided.reset()
    x = x0
    for t, t_next in itertools.pairwise(grid):
        h = t_next - t
        t_now = torch.full((x.shape[0],), t, dtype=x.dtype, device=x.device)
        t_mid = t_now + h / 2
        v_c = conditional(x, t_now, cond)
        x_mid = x + (h / 2) * v_c
        pred = guided.evaluate(x_mid, t_mid, cond)
        decay = (1.0 - model.progress(t_mid)).clamp(min=0.0) ** gamma
        x = x + h * (v_c + decay.reshape((-1,) + (1,) * (x.ndim - 1)) * (pred.guided - pred.cond))
    used = model.stats - before
    stats = FlowStats(
        nfe=2 * steps,
        forward_calls=used.calls,
        forward_rows=used.rows,
        skipped_reference=guided.stats.skipped_reference,
        steps=steps,
        accepted_steps=None,
        rejected_steps=None,
        jump_t=(),
    )
    return x, stats
