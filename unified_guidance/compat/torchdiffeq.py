"""torchdiffeq names the project relies on.

torchdiffeq has no public solver registry: ``odeint`` looks methods up in the private
``torchdiffeq._impl.odeint.SOLVERS`` dict, and the two solver families are told apart
by their private base classes. Read here once, so a reorganisation of ``_impl`` is one
edit; the step callbacks (``callback_step``, ``callback_accept_step``,
``callback_reject_step``) are public and taken from each solver's ``valid_callbacks()``.
"""

from __future__ import annotations

from typing import Any

from torchdiffeq._impl.odeint import SOLVERS as _SOLVERS
from torchdiffeq._impl.rk_common import RKAdaptiveStepsizeODESolver
from torchdiffeq._impl.solvers import FixedGridODESolver


def solver_registry() -> dict[str, type[Any]]:  # torchdiffeq has no type information
    """``{method name: solver class}`` as ``odeint(method=...)`` resolves it."""
    return dict(_SOLVERS)


def is_adaptive(solver: type) -> bool:
    """Whether ``solver`` is an adaptive Runge–Kutta solver (tolerances, ``jump_t``/``step_t``)."""
    return issubclass(solver, RKAdaptiveStepsizeODESolver)


def is_fixed_grid(solver: type) -> bool:
    """Whether ``solver`` steps on a fixed grid (``step_size`` or ``grid_constructor``)."""
    return issubclass(solver, FixedGridODESolver)
