"""Guided sampling: torchdiffeq's ``odeint`` over the guided velocity field.

    x, stats = sample(model, Guidance(scale=Interval(3.0, lo=0.2, hi=0.8)), noise, labels, method="dopri5")

Integrates ``dx/dt = ũ_t(x)`` with ``ũ`` the guided velocity (for CFG,
``u(x|∅) + s(τ)·(u(x|y) − u(x|∅))``; the guided-flows form of Zheng et al.,
arXiv 2311.13443, ``(1 − w)u(x|∅) + w·u(x|y)``, is the same with s = w) from
the noise end of the model's path to its data end. Any torchdiffeq method
works; the schedule's (and CFG-Zero*'s zero-init) discontinuities are handed to
adaptive solvers as jump points. Nothing runs under ``no_grad``: gradients flow
to the noise and the network when the caller enables them (``adjoint=True`` uses
``odeint_adjoint``, O(1) memory in the number of steps). ``method="rectified_cfgpp"``
integrates with Rectified-CFG++'s predictor–corrector steps instead (:mod:`.rectified`).

Precision: the model is called in the noise's dtype, but the solver's state, times and
steps are kept in at least float32 (:class:`~unified_guidance.core.shapes.Precision`): a
float16 or bfloat16 network integrates as accurately as its velocities allow, and the
samples come back in the noise's dtype.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torchdiffeq import odeint, odeint_adjoint

from ..core.conditions import Cond, Conditions
from ..core.model import ConditionalModel
from ..core.shapes import Precision
from ..guidance.engine import Guidance, GuidedModel, guide
from ..guidance.stats import CostMeter, SampleOutput
from ..schedules.scale import Schedule
from .arguments import as_times, check_state
from .field import GuidedField
from .jumps import jump_times
from .rectified import RECTIFIED, rectified_cfgpp
from .solvers import ADAPTIVE, FIXED, SOLVERS, check_grid_given, check_method, solver_callbacks, solver_options


def trajectory(
    model: ConditionalModel | GuidedModel,
    guidance: Guidance | Schedule | float | None,
    noise: Tensor,
    cond: Cond | Conditions | None = None,
    *,
    times: Sequence[float] | Tensor,
    method: str = "dopri5",
    steps: int | None = None,
    step_size: float | None = None,
    rtol: float = 1e-5,
    atol: float = 1e-5,
    options: dict[str, Any] | None = None,
    jump_points: bool = True,
    adjoint: bool = False,
) -> SampleOutput:
    """The guided flow's states at ``times`` ``(T, B, ...)`` and their cost, as a :class:`SampleOutput`.

    Args:
        model: a velocity :class:`ConditionalModel`, or an already guided model
            (then ``guidance`` must be ``None``).
        guidance: a :class:`Guidance`, a scale schedule or a number (plain CFG).
        noise: the starting state ``(B, ...)`` at ``times[0]`` (noise at the start of the path), in the
            network's dtype; the states are integrated in at least float32 and returned in this dtype.
        cond: the condition ``(B, ...)``, a :class:`Conditions`, or ``None`` for ∅.
        times: increasing or decreasing path times in [0, 1]; ``times[0]`` is the starting state's time.
        method: a torchdiffeq method (``"euler"``, ``"rk4"``, ``"dopri5"``, …).
        steps: uniform steps over the whole span, for fixed-grid methods. Without ``steps``,
            ``step_size`` or ``options["grid_constructor"]`` a fixed-grid method steps on ``times``
            themselves, as torchdiffeq's ``odeint(f, y0, times, method=...)`` does.
        step_size: or torchdiffeq's ``step_size`` for fixed-grid methods.
        rtol, atol: tolerances of adaptive methods.
        options: more torchdiffeq options (merged; user ``jump_t`` is kept).
        jump_points: hand the field's discontinuities to adaptive solvers (``jump_t``); a method that
            cannot take them (``scipy_solver``) is refused where the guidance jumps inside the span,
            unless ``jump_points=False``. Fixed-grid methods step on their grid, across any jump.
        adjoint: integrate with ``odeint_adjoint`` (gradients by the adjoint method).
    """
    guided = _guided(model, guidance)
    check_state("noise", noise)
    precision = Precision.of(noise)
    state = precision.to_state(noise)
    states, stats = integrate(
        guided,
        cond,
        state,
        as_times(times, state),
        method=method,
        steps=steps,
        step_size=step_size,
        rtol=rtol,
        atol=atol,
        options=options,
        jump_points=jump_points,
        adjoint=adjoint,
        dtype=precision.network,
    )
    return SampleOutput(precision.to_network(states), stats)


def integrate(
    guided: GuidedModel,
    cond: Cond | Conditions | None,
    state0: Any,
    t: Tensor,
    *,
    method: str,
    steps: int | None = None,
    step_size: float | None = None,
    rtol: float = 1e-5,
    atol: float = 1e-5,
    options: dict[str, Any] | None = None,
    jump_points: bool = True,
    adjoint: bool = False,
    augment: Callable[[GuidedField], nn.Module] | None = None,
    dtype: torch.dtype | None = None,
) -> SampleOutput:
    """Run torchdiffeq over the guided field (or ``augment(field)``, e.g. with a log-density term).

    The common core of :func:`trajectory` and :func:`~.likelihood.log_likelihood`:
    builds the solver options (grid or jump points), counts evaluations, steps
    and network rows, and returns torchdiffeq's solution with the cost. ``state0`` and
    ``t`` are in the state's dtype (at least float32); ``dtype`` is the network's, in which
    the guided model is called (default: the state's).
    """
    check_method(method)
    jumps = jump_times(guided, t) if method not in FIXED and jump_points else ()  # a grid ignores jumps
    opts = solver_options(method, steps=steps, step_size=step_size, jump_t=jumps, times=t.tolist(), options=options)
    field = GuidedField(guided, cond, solver_callbacks(method), check_finite=guided.guidance.check_finite, dtype=dtype)
    func = field if augment is None else augment(field)
    guided.reset()
    meter = CostMeter.of(guided)
    solve = odeint_adjoint if adjoint else odeint
    solution = solve(func, state0, t, rtol=rtol, atol=atol, method=method, options=opts)
    adaptive = method in ADAPTIVE
    stats = meter.stats(
        nfe=field.nfe,
        steps=field.accepted + field.rejected if adaptive else field.steps if method in FIXED else None,
        accepted_steps=field.accepted if adaptive else None,
        rejected_steps=field.rejected if adaptive else None,
        jump_t=jumps,
    )
    return SampleOutput(solution, stats)


def sample(
    model: ConditionalModel | GuidedModel,
    guidance: Guidance | Schedule | float | None,
    noise: Tensor,
    cond: Cond | Conditions | None = None,
    *,
    method: str = "dopri5",
    t_span: tuple[float, float] | None = None,
    **kwargs: Any,
) -> SampleOutput:
    """Integrate the guided flow from ``noise`` ``(B, ...)`` to data; ``x, stats = sample(...)``.

    ``method`` is a torchdiffeq solver (:data:`~.solvers.SOLVERS`) or ``"rectified_cfgpp"``
    (Rectified-CFG++, :func:`~.rectified.rectified_cfgpp`: ``steps`` and ``gamma`` in ``kwargs``).
    ``t_span`` defaults to the model path's noise and data ends (0 → 1 on the linear path,
    σ = 1 → 0 on the rectified one). Other keyword arguments are those of :func:`trajectory`
    (``steps``, ``step_size``, ``rtol``, ``atol``, …); a fixed-grid method needs ``steps`` or ``step_size``.

    Returns:
        a :class:`SampleOutput`: the samples ``(B, ...)`` and their cost.
    """
    if method == RECTIFIED:
        if isinstance(model, GuidedModel):
            raise TypeError("model: Rectified-CFG++ takes the ConditionalModel and its guidance, got a GuidedModel")
        return rectified_cfgpp(model, 1.0 if guidance is None else guidance, noise, cond, t_span=t_span, **kwargs)
    if method not in SOLVERS:
        raise ValueError(
            f"method: unknown torchdiffeq solver {method!r}; valid methods: {', '.join(SOLVERS)}, "
            f"and {RECTIFIED!r} (Rectified-CFG++)"
        )
    path = (model.model if isinstance(model, GuidedModel) else model).path
    if t_span is None:
        if path is None:
            raise ValueError("model: expected a model with a path (a velocity model), got one without")
        t_span = (float(path.time(torch.tensor(0.0))), float(path.time(torch.tensor(1.0))))
    check_grid_given(method, kwargs)
    xs, stats = trajectory(model, guidance, noise, cond, times=t_span, method=method, **kwargs)
    return SampleOutput(xs[-1], stats)


def _guided(model: ConditionalModel | GuidedModel, guidance: Guidance | Schedule | float | None) -> GuidedModel:
    if isinstance(model, GuidedModel):
        if guidance is not None:
            raise ValueError("guidance: model is already a GuidedModel; pass guidance=None")
        return model
    if guidance is None:
        guidance = 1.0
    return guide(model, guidance)
