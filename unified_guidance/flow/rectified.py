"""Rectified-CFG++ (Saini, Gupta & Bovik, arXiv 2510.07631): guidance as a predictor–corrector step.

CFG's extrapolated velocity pushes a deterministic flow off the learned
trajectories, and no re-noising pulls it back (CFG++, arXiv 2406.08070, does that
for diffusion samplers). Rectified-CFG++ anchors each step on the conditional
velocity and applies guidance as a correction evaluated at a point on the
conditional path. For a step t → t + h (path time, h signed; τ = progress at t):

    v_c   = v(x_t, t | y)                          # predictor velocity (B rows)
    x̃     = x_t + (h/2)·v_c                        # half a conditional step
    g̃, c̃  = guided(x̃, t + h/2), v(x̃, t + h/2 | y)  # guidance rule at x̃ (2B rows)
    x_t+h = x_t + h·(v_c + τ^γ·(g̃ − c̃))

The paper's Algorithm 1 (lines 3, 4, 6–9) in its own notation: time t_p from 1
(noise) to 0 (data) on x_t = (1 − t_p)·x_0 + t_p·x_1, v̂ = v^c_t + α(t_p)(v^c − v^u)
at x̃_{t−Δt/2}, α(t_p) = λ_max·(1 − t_p)^γ, then an Euler update with v̂. Here
t_p = 1 − τ, so α = λ_max·τ^γ at the step's start: no correction at the noise
end, the full λ_max at the data end (γ = 0: constant, as in the authors' SD3
pipeline). With CFG, g̃ − c̃ = (s − 1)(c̃ − ũ), i.e. λ_max = s − 1. A step whose
weight τ^γ is 0 (the first, for γ > 0) is plain Euler and skips the x̃ forward;
s = 1 skips the reference. The optional noise of line 5 is left out (deterministic).
Guidance's diffusers-style guider API cannot express this (it sees one point per
step), which is why it lives here at the solver.
"""

from __future__ import annotations

import itertools

import torch
from torch import Tensor

from ..core.conditions import Cond, Conditions
from ..core.model import ConditionalModel
from ..core.numbers import check_int, check_number
from ..core.shapes import Precision
from ..guidance.engine import Guidance, GuidedModel
from ..guidance.spec import as_guidance
from ..guidance.stats import CostMeter, SampleOutput
from ..schedules.scale import Schedule
from .arguments import as_times, check_state

RECTIFIED = "rectified_cfgpp"
"""Its ``method`` name in :func:`~.sample.sample`."""


def rectified_cfgpp(
    model: ConditionalModel,
    guidance: Guidance | Schedule | float,
    noise: Tensor,
    cond: Cond | Conditions | None = None,
    *,
    steps: int,
    gamma: float = 1.0,
    t_span: tuple[float, float] | None = None,
) -> SampleOutput:
    """Integrate a velocity model from ``noise`` ``(B, ...)`` to data with Rectified-CFG++ steps.

    The same as ``flow.sample(model, guidance, noise, cond, method="rectified_cfgpp", steps=…)``.

    Args:
        model: a velocity :class:`ConditionalModel` with a path.
        guidance: a :class:`Guidance` (its rule gives g̃; CFG is the paper's), a schedule or a scale.
        noise: the starting state ``(B, ...)`` at the path's noise end, in the network's dtype (the
            state and times are kept in at least float32; the samples come back in this dtype).
        cond: the condition, :class:`Conditions`, or ``None`` for ∅.
        steps: uniform steps from the noise end to the data end (3B forward rows each where s ≠ 1).
        gamma: exponent γ ≥ 0 of the correction's weight τ^γ (the paper's (1 − t)^γ); 0 keeps it constant.
        t_span: path times (start, end); default the path's noise and data ends.

    Returns:
        a :class:`~unified_guidance.guidance.SampleOutput`: the samples ``(B, ...)`` and their cost
        (``nfe`` counts guided-model evaluations: two a step, one where the weight τ^γ is 0).
    """
    if not isinstance(model, ConditionalModel):
        raise TypeError(f"model: expected a ConditionalModel (velocity), got {type(model).__name__}")
    if model.space != "velocity" or model.path is None:
        raise ValueError(f"model: expected a velocity model with a path, got space {model.space!r}")
    check_int("steps", steps, lo=1)
    if check_number("gamma", gamma) < 0.0:
        raise ValueError(f"gamma: expected a value ≥ 0, got {gamma}")
    check_state("noise", noise)
    guidance = as_guidance(guidance)
    guided, conditional = GuidedModel(model, guidance), GuidedModel(model, Guidance(scale=1.0))
    path = model.path
    if t_span is None:
        t_span = (float(path.time(torch.tensor(0.0))), float(path.time(torch.tensor(1.0))))
    as_times(t_span, noise, "t_span")
    grid = torch.linspace(t_span[0], t_span[1], steps + 1, dtype=torch.float64).tolist()
    guided.reset()
    meter = CostMeter.of(guided)
    precision = Precision.of(noise)
    x, nfe = precision.to_state(noise), 0
    net = precision.to_network
    for t, t_next in itertools.pairwise(grid):
        h = t_next - t
        t_now = torch.full((x.shape[0],), t, dtype=x.dtype, device=x.device)
        v_c = precision.to_state(conditional(net(x), t_now, cond))
        weight = correction_weight(model, t, gamma)
        nfe += 1
        if weight == 0.0:
            x = x + h * v_c
            continue
        pred = guided.evaluate(net(x + (h / 2) * v_c), t_now + h / 2, cond)
        nfe += 1
        x = x + h * (v_c + weight * (precision.to_state(pred.guided) - precision.to_state(pred.cond)))
    return SampleOutput(net(x), meter.stats(nfe=nfe, steps=steps))


def correction_weight(model: ConditionalModel, t: float, gamma: float) -> float:
    """The correction's weight τ^γ at path time ``t`` (τ its progress; the paper's (1 − t_p)^γ, t_p = 1 − τ)."""
    tau = float(model.progress(torch.tensor(t, dtype=torch.float64)))
    return min(max(tau, 0.0), 1.0) ** gamma
