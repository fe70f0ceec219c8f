"""torchdiffeq's solvers, sorted by kind, and the options each kind takes.

* adaptive Runge–Kutta (``dopri5``, ``dopri8``, ``bosh3``, ``fehlberg2``,
  ``adaptive_heun``): tolerances ``rtol``/``atol``; discontinuities of the field
  go in ``options["jump_t"]`` (the solver ends a step exactly there and
  re-evaluates the field just after it), plain grid points in ``options["step_t"]``.
* fixed grid (``euler``, ``midpoint``, ``heun2``, ``heun3``, ``rk4``,
  ``explicit_adams``, ``implicit_adams``, ``fixed_adams``): ``step_size``, a
  ``grid_constructor``, or neither: then they step on the requested times
  themselves, torchdiffeq's own convention (``odeint(f, y0, t, method="euler")``).
  With ``step_size`` torchdiffeq puts the last grid point at the end time and only
  *interpolates* to any intermediate requested times, so ``steps=`` here builds an
  exact uniform grid instead.
* ``scipy_solver``: scipy's ``solve_ivp`` (it evaluates the field under ``no_grad``). It takes no
  jump points, so a guidance that jumps inside the span is refused unless ``jump_points=False``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from ..compat import torchdiffeq as tde
from ..core.numbers import check_int

SOLVERS: dict[str, type[Any]] = tde.solver_registry()
ADAPTIVE = tuple(name for name, cls in SOLVERS.items() if tde.is_adaptive(cls))
FIXED = tuple(name for name, cls in SOLVERS.items() if tde.is_fixed_grid(cls))


def check_method(method: str) -> str:
    """Return ``method`` if torchdiffeq knows it, else raise listing its solvers."""
    if method not in SOLVERS:
        raise ValueError(f"method: unknown torchdiffeq solver {method!r}; valid methods: {', '.join(SOLVERS)}")
    return method


def solver_callbacks(method: str) -> set[str]:
    """The step callbacks torchdiffeq calls for ``method``."""
    return set(SOLVERS[check_method(method)].valid_callbacks())


def solver_options(
    method: str,
    *,
    steps: int | None,
    step_size: float | None,
    jump_t: Sequence[float],
    times: Sequence[float],
    options: dict[str, Any] | None,
) -> dict[str, Any]:
    """torchdiffeq ``options`` for ``method``: a grid for fixed solvers, jump points for adaptive ones.

    Adaptive solvers also get the requested ``times`` as ``step_t`` points: torchdiffeq
    otherwise lets a step overshoot the end and evaluates the field beyond it
    (at t > 1 on the linear path, or t < 0 in an adjoint's backward pass), then
    interpolates back.
    """
    check_method(method)
    opts = dict(options or {})
    if method in ADAPTIVE:
        if steps is not None or step_size is not None:
            raise ValueError(f"steps: method {method!r} is adaptive; give rtol/atol, not steps or step_size")
        user_jumps = {float(v) for v in torch.as_tensor(opts.get("jump_t", []), dtype=torch.float64).reshape(-1)}
        jumps = user_jumps | {float(v) for v in jump_t}
        user_steps = {float(v) for v in torch.as_tensor(opts.get("step_t", []), dtype=torch.float64).reshape(-1)}
        step_t = sorted((user_steps | {float(v) for v in times}) - jumps)
        jumps -= set(step_t)
        opts["step_t"] = torch.tensor(step_t, dtype=torch.float64)
        if jumps:
            opts["jump_t"] = torch.tensor(sorted(jumps), dtype=torch.float64)
        return opts
    if method in FIXED:
        given = _grid_arguments(steps, step_size, opts)
        if len(given) > 1:
            raise ValueError(
                f"steps: fixed-grid method {method!r} takes at most one of steps=, step_size= "
                f"or options['grid_constructor'], got {given}"
            )
        if steps is not None:
            check_int("steps", steps, lo=1)
            opts["grid_constructor"] = _uniform_grid(steps)
        elif step_size is not None:
            if not step_size > 0:
                raise ValueError(f"step_size: expected a positive number, got {step_size}")
            opts["step_size"] = step_size
        return opts  # none given: torchdiffeq steps on the requested times
    if steps is not None or step_size is not None:
        raise ValueError(f"steps: method {method!r} takes tolerances, not steps or step_size")
    if jump_t:  # scipy's solve_ivp takes no jump points: it would step across the guidance's jumps
        raise ValueError(
            f"method: {method!r} cannot stop at the guidance's discontinuities (path times "
            f"{', '.join(f'{j:g}' for j in jump_t)}: its schedules' and rules' breakpoints); use an adaptive "
            f"torchdiffeq method ({', '.join(ADAPTIVE)}), or pass jump_points=False to integrate across them"
        )
    return opts


def check_grid_given(method: str, kwargs: Mapping[str, Any]) -> None:
    """Over a span (start and end only), a fixed-grid ``method`` needs its grid: raise unless ``kwargs``
    (a sampler's solver settings) give ``steps``, ``step_size`` or ``options["grid_constructor"]``
    (one step over the whole span, torchdiffeq's reading of two times, is never what a sampler means)."""
    given = _grid_arguments(kwargs.get("steps"), kwargs.get("step_size"), dict(kwargs.get("options") or {}))
    if method in FIXED and not given:
        raise ValueError(
            f"steps: fixed-grid method {method!r} needs exactly one of steps=, step_size= "
            "or options['grid_constructor'], got none (trajectory(..., times=grid) steps on the given times)"
        )


def _grid_arguments(steps: int | None, step_size: float | None, opts: dict[str, Any]) -> list[str]:
    named = ["steps"] * (steps is not None) + ["step_size"] * (step_size is not None)
    return named + [name for name in ("step_size", "grid_constructor") if name in opts]


def _uniform_grid(steps: int):
    """A grid constructor with ``steps`` equal steps from the first to the last requested time."""

    def grid(func, y0, t):
        return torch.linspace(float(t[0]), float(t[-1]), steps + 1, dtype=t.dtype, device=t.device)

    return grid
