"""The guided velocity field in torchdiffeq's ``func(t, x)`` form, with honest counters.

torchdiffeq calls ``func(t, y)`` with a scalar ``t`` already cast to y's dtype
(so a float32 state sees float32 times). The state is kept in at least float32
(:class:`~unified_guidance.core.shapes.Precision`); the field casts it to the
network's dtype for each call and the velocity back to the state's, so a half-precision
network never makes the solver accumulate in half precision. It broadcasts ``t`` to the batch,
calls the :class:`~unified_guidance.guidance.GuidedModel` ``(x, t, cond)``, checks
the state and the velocity for NaN/inf and names the time where they appear.
Step counts come from torchdiffeq's own callbacks (``callback_step``,
``callback_accept_step``, ``callback_reject_step``), registered only for the
solvers that call them, so nothing is guessed from the number of evaluations.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from ..core.checks import reads_back
from ..core.conditions import Cond, Conditions
from ..guidance.engine import GuidedModel


class IntegrationError(ValueError):
    """The velocity field failed during integration; ``t`` is the time of the failing evaluation."""

    def __init__(self, message: str, t: float) -> None:
        super().__init__(message)
        self.t = t


class GuidedField(nn.Module):
    """``func(t, x) = guided(x, t·1_B, cond)`` for torchdiffeq.

    Args:
        guided: the guided model (its output space must be ``"velocity"``).
        cond: the condition passed on every evaluation (``None`` for ∅).
        callbacks: names of the torchdiffeq callbacks the chosen solver supports.
        check_finite: check the state and velocity on every evaluation.
        dtype: the dtype the guided model is called in (the network's; default: the state's own).
            The velocity is returned in the state's dtype.
    """

    def __init__(
        self,
        guided: GuidedModel,
        cond: Cond | Conditions | None,
        callbacks: set[str],
        *,
        check_finite: bool = True,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        if guided.space != "velocity":
            raise ValueError(f"model: expected a velocity model (space 'velocity'), got space {guided.space!r}")
        self.guided = guided
        self.cond = cond
        self.check_finite = check_finite
        self.dtype = dtype
        self.nfe = 0
        self.steps = 0
        self.accepted = 0
        self.rejected = 0
        # torchdiffeq looks these up on the func and warns about ones a solver never calls.
        if "callback_step" in callbacks:
            self.callback_step = self._on_step
        if "callback_accept_step" in callbacks:
            self.callback_accept_step = self._on_accept
        if "callback_reject_step" in callbacks:
            self.callback_reject_step = self._on_reject

    def forward(self, t: Tensor, x: Tensor) -> Tensor:
        self.nfe += 1
        # t stays in the graph: an adaptive step's size depends on the state, and backprop through
        # the solver is only consistent if the stage times carry that dependence too.
        t_batch = t.to(x.dtype).expand(x.shape[0])
        if self.check_finite:
            self._check(t, "state x", x)
        try:
            v = self.guided(x if self.dtype is None else x.to(self.dtype), t_batch, self.cond).to(x.dtype)
        except IntegrationError:
            raise
        except ValueError as err:
            raise IntegrationError(f"velocity field at t={float(t):.6g}: {err}", float(t)) from err
        if self.check_finite:
            self._check(t, "guided velocity", v)
        return v

    def _check(self, t: Tensor, what: str, value: Tensor) -> None:
        if reads_back() and not bool(torch.isfinite(value).all()):
            bad = int((~torch.isfinite(value)).sum())
            raise IntegrationError(
                f"{what}: non-finite values ({bad} entries) at t={float(t):.6g}; integration stopped", float(t)
            )

    def _on_step(self, t0: Tensor, y0: Tensor, dt: Tensor, *_: Any) -> None:
        self.steps += 1

    def _on_accept(self, t0: Tensor, y0: Tensor, dt: Tensor, *_: Any) -> None:
        self.accepted += 1

    def _on_reject(self, t0: Tensor, y0: Tensor, dt: Tensor, *_: Any) -> None:
        self.rejected += 1
