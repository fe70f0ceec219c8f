"""Where an adaptive solver's jump points go, so that it never straddles a discontinuity.

torchdiffeq ends a step at a jump point ``j`` and evaluates the field one float before it
(the step's last stages) and one float after it (the first evaluation of the next step), in
the state's dtype. The guided field jumps where its progress τ crosses a breakpoint τ_b of
the guidance (an interval's ends, a zero-init's end), but τ is computed from t: on the
rectified path τ = 1 − σ, and several adjacent σ round to the same τ. With ``j`` at
``path.time(τ_b)`` the float after ``j`` can round back onto τ_b, inside a closed interval,
and the solver sees the jump inside its next step (dopri5 then shrinks its steps around it).

:func:`jump_times` places each jump on the float grid the field is evaluated on: where the
floats next to ``path.time(τ_b)`` already see the two sides, it stays there; otherwise it is
the last float, in the direction of integration, whose scales and zero flags are those of
the side before the jump (found by bisection on the floats), so the float after it is the
first on the far side.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..core.path import Path
from ..guidance.engine import Guidance, GuidedModel
from ..guidance.plan import Plan

# the integer type of each float's bits: for floats ≥ 0, their order is that of the floats
_BITS = {
    torch.float64: torch.int64,
    torch.float32: torch.int32,
    torch.float16: torch.int16,
    torch.bfloat16: torch.int16,
}
_WINDOW_EPS = 64  # the search reaches this many machine epsilons either side of path.time(τ_b)


def jump_times(guided: GuidedModel, t: Tensor) -> tuple[float, ...]:
    """Path times strictly inside the span of ``t`` where the guided field jumps (the guidance's
    breakpoints and a zero-init's end), placed on the floats of ``t``'s dtype so that torchdiffeq's
    evaluations next to each jump fall on the two sides of it; sorted ascending."""
    path = guided.path
    if path is None:
        raise ValueError("model: expected a model with a path (a velocity model), got one without")
    lo, hi = float(t.min()), float(t.max())
    forward = bool(t[-1] > t[0])
    placed = (_place(guided.guidance, path, tau, t.dtype, forward) for tau in guided.guidance.breakpoints())
    return tuple(sorted(j for j in placed if lo < j < hi))


def _place(guidance: Guidance, path: Path, tau: float, dtype: torch.dtype, forward: bool) -> float:
    """The jump time for breakpoint ``tau``: see the module docstring."""
    t_b = float(path.time(torch.tensor(tau, dtype=torch.float64)))
    if dtype not in _BITS:
        return t_b
    step = 1 if forward else -1  # bits advance with t (t ≥ 0): +1 is later when t increases
    width = _WINDOW_EPS * torch.finfo(dtype).eps
    ends = (_bits(max(t_b - width, 0.0), dtype), _bits(min(t_b + width, 1.0), dtype))
    before, after = ends if forward else ends[::-1]

    def side(bits: int) -> tuple[float, ...]:
        return _signature(guidance, path.progress(_float(bits, dtype)))

    pre, post = side(before), side(after)
    centre = _bits(t_b, dtype)
    if pre == post or (side(centre - step) == pre and side(centre + step) == post):
        return t_b
    while abs(after - before) > 1:  # invariant: side(before) == pre != side(after)
        mid = (before + after) // 2
        before, after = (mid, after) if side(mid) == pre else (before, mid)
    return float(_float(before, dtype))


def _signature(guidance: Guidance, tau: Tensor) -> tuple[float, ...]:
    """Every reference's scale and zero flag at one progress value: equal on one side of a jump."""
    plan = Plan.build(guidance, tau.clamp(0.0, 1.0).reshape(1))
    return tuple(plan.scales[0].tolist()) + tuple(float(z) for z in plan.zero[0].tolist())


def _bits(value: float, dtype: torch.dtype) -> int:
    return int(torch.tensor(value, dtype=dtype).view(_BITS[dtype]))


def _float(bits: int, dtype: torch.dtype) -> Tensor:
    return torch.tensor(bits, dtype=_BITS[dtype]).view(dtype)
