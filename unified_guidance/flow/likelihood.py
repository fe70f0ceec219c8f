"""Log-likelihood of a sample under a guided velocity field.

Instantaneous change of variables (Chen et al., arXiv 1806.07366; FFJORD,
Grathwohl et al., arXiv 1810.01367): along ``dx/dt = ũ_t(x)``,

    d log p_t(x_t)/dt = −∇·ũ_t(x_t),   so   log p_data(x) = log p_noise(x_noise) − ∫_noise^data ∇·ũ_t(x_t) dt.

The state (x, L) is integrated from the data end back to the noise end with
dL/dt = ∇·ũ, L = 0 at the data end, which gives ``log p_data(x) = log p_noise(x_noise) + L``.
The divergence is exact (one vector–Jacobian product per dimension) for small
dimensions and Hutchinson's estimator ``E_ε[εᵀ (∂ũ/∂x) ε]`` with Rademacher ε,
fixed over the solve as in FFJORD, for large ones. The guided field is a
different vector field from the conditional one at s ≠ 1; this is the density
the guided sampler actually draws from. Rows must be independent (no batch
statistics in the network), as the sum over the batch is differentiated.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from ..core.conditions import Cond, Conditions
from ..core.model import ConditionalModel
from ..core.shapes import Precision
from ..guidance.engine import Guidance, GuidedModel
from ..guidance.stats import SampleStats
from ..schedules.scale import Schedule
from .field import GuidedField
from .sample import _guided, as_times, integrate
from .solvers import check_grid_given

DIVERGENCES = ("auto", "exact", "hutchinson")


@dataclass(frozen=True)
class LogLikelihood:
    """``log_prob = prior_log_prob + delta_log_prob``, each ``(B,)``; ``noise`` is x mapped to the noise end."""

    log_prob: Tensor
    prior_log_prob: Tensor
    delta_log_prob: Tensor
    noise: Tensor
    stats: SampleStats


def standard_normal_log_prob(z: Tensor) -> Tensor:
    """log N(z; 0, I) per sample, ``(B, ...) -> (B,)``."""
    flat = z.reshape(z.shape[0], -1)
    return -0.5 * (flat * flat).sum(1) - 0.5 * flat.shape[1] * math.log(2 * math.pi)


def divergence_exact(v: Tensor, x: Tensor, *, create_graph: bool = False) -> Tensor:
    """∇·v = Σᵢ ∂vᵢ/∂xᵢ per sample by D vector–Jacobian products; ``(B, ...) -> (B,)``."""
    flat_v = v.reshape(v.shape[0], -1)
    div = torch.zeros(v.shape[0], dtype=v.dtype, device=v.device)
    for i in range(flat_v.shape[1]):
        (grad,) = torch.autograd.grad(flat_v[:, i].sum(), x, create_graph=create_graph, retain_graph=True)
        div = div + grad.reshape(grad.shape[0], -1)[:, i]
    return div


def divergence_hutchinson(v: Tensor, x: Tensor, probes: Tensor, *, create_graph: bool = False) -> Tensor:
    """Hutchinson's estimate ``mean_k ε_kᵀ (∂v/∂x) ε_k`` with ``probes`` ``(K, B, ...)``; ``(B,)``."""
    total = torch.zeros(v.shape[0], dtype=v.dtype, device=v.device)
    for eps in probes:
        (vjp,) = torch.autograd.grad(v, x, eps, create_graph=create_graph, retain_graph=True)
        total = total + (vjp * eps).reshape(v.shape[0], -1).sum(1)
    return total / probes.shape[0]


class _Augmented(nn.Module):
    """``(t, (x, L)) -> (ũ, ∇·ũ)``, forwarding the field's step callbacks to torchdiffeq."""

    def __init__(self, field: GuidedField, probes: Tensor | None, create_graph: bool) -> None:
        super().__init__()
        self.field = field
        self.probes = probes
        self.create_graph = create_graph
        for name in ("callback_step", "callback_accept_step", "callback_reject_step"):
            if hasattr(field, name):
                setattr(self, name, getattr(field, name))

    def forward(self, t: Tensor, state: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        x = state[0]
        with torch.enable_grad():
            x = x if x.requires_grad else x.detach().requires_grad_(True)
            v = self.field(t, x)
            if self.probes is None:
                div = divergence_exact(v, x, create_graph=self.create_graph)
            else:
                div = divergence_hutchinson(v, x, self.probes, create_graph=self.create_graph)
        if not self.create_graph:
            v, div = v.detach(), div.detach()
        return v, div


def log_likelihood(
    model: ConditionalModel | GuidedModel,
    guidance: Guidance | Schedule | float | None,
    x: Tensor,
    cond: Cond | Conditions | None = None,
    *,
    divergence: str = "auto",
    exact_max_dim: int = 32,
    probes: int = 1,
    generator: torch.Generator | None = None,
    prior: Callable[[Tensor], Tensor] = standard_normal_log_prob,
    t_span: Sequence[float] | None = None,
    create_graph: bool = False,
    method: str = "dopri5",
    **kwargs: Any,
) -> LogLikelihood:
    """log p(x) of data ``x`` ``(B, ...)`` under the flow of the guided field.

    Args:
        divergence: ``"exact"``, ``"hutchinson"`` or ``"auto"`` (exact up to ``exact_max_dim`` dimensions).
        probes: Rademacher probes per sample for Hutchinson's estimator (drawn once, fixed over the solve).
        generator: for the probes.
        prior: the log density at the noise end, ``(B, ...) -> (B,)``; N(0, I) by default.
        t_span: (data time, noise time); the model path's ends by default.
        create_graph: keep the graph through the divergence (to differentiate the likelihood).
        method, kwargs: solver settings as in :func:`~.sample.trajectory`.

    The model is called in x's dtype; the state (x, L) is integrated in at least float32 and
    every result is returned in x's dtype.
    """
    if divergence not in DIVERGENCES:
        raise ValueError(f"divergence: expected one of {', '.join(DIVERGENCES)}, got {divergence!r}")
    guided = _guided(model, guidance)
    path = guided.path
    if t_span is None:
        if path is None:
            raise ValueError("model: expected a model with a path (a velocity model), got one without")
        t_span = (float(path.time(torch.tensor(1.0))), float(path.time(torch.tensor(0.0))))
    check_grid_given(method, kwargs)
    dim = math.prod(x.shape[1:])
    exact = divergence == "exact" or (divergence == "auto" and dim <= exact_max_dim)
    precision = Precision.of(x)
    state = precision.to_state(x)
    eps = None
    if not exact:
        if probes < 1:
            raise ValueError(f"probes: expected a positive number of probes, got {probes}")
        signs = torch.randint(0, 2, (probes, *x.shape), generator=generator, device="cpu")
        eps = (2 * signs - 1).to(device=x.device, dtype=state.dtype)
    state0 = (state, torch.zeros(x.shape[0], dtype=state.dtype, device=x.device))
    (xs, ls), stats = integrate(
        guided,
        cond,
        state0,
        as_times(t_span, state),
        method=method,
        augment=lambda field: _Augmented(field, eps, create_graph),
        dtype=precision.network,
        **kwargs,
    )
    noise, delta = xs[-1], ls[-1]
    prior_lp = prior(noise)
    out = precision.to_network
    return LogLikelihood(out(prior_lp + delta), out(prior_lp), out(delta), out(noise), stats)
