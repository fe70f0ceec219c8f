"""Prediction spaces and the one place that converts between them.

For a path ``x = α·x0 + σ·ε`` (coefficients from :class:`PathCoefficients`):

==========  =====================================  =====================================
space       prediction                             back to (x0, ε)
==========  =====================================  =====================================
eps         ε                                      x0 = (x − σε)/α
x0          x0                                     ε = (x − αx0)/σ
v           v = αε − σx0  (Salimans & Ho,          x0 = (αx − σv)/(α²+σ²),
            arXiv 2202.00512)                      ε = (σx + αv)/(α²+σ²)
score       ∇ log p_t(x) = −ε/σ                    ε = −σ·score
velocity    dx/dt = α'x0 + σ'ε                     x0 = (σ'x − σu)/D, ε = (αu − α'x)/D,
                                                   D = ασ' − σα'
==========  =====================================  =====================================

``logits`` and ``logprobs`` are the autoregressive spaces: logits → logprobs is
``log_softmax``; logprobs are valid logits, so the way back is the identity.
Every conversion broadcasts the coefficients over ``x`` itself.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .path import PathCoefficients
from .shapes import broadcast_like

CONTINUOUS_SPACES = ("eps", "x0", "v", "score", "velocity")
TOKEN_SPACES = ("logits", "logprobs")
SPACES = CONTINUOUS_SPACES + TOKEN_SPACES


def check_space(name: str, space: str) -> str:
    """Return ``space`` if it is known, else raise listing the valid names."""
    if space not in SPACES:
        raise ValueError(f"{name}: unknown prediction space {space!r}; valid spaces: {', '.join(SPACES)}")
    return space


def to_x0_eps(pred: Tensor, space: str, x: Tensor, coeffs: PathCoefficients) -> tuple[Tensor, Tensor]:
    """Express a prediction in ``space`` as the pair (x0, ε) it implies at ``x``."""
    a, s = broadcast_like(coeffs.alpha_t, x), broadcast_like(coeffs.sigma_t, x)
    if space == "eps":
        return (x - s * pred) / a, pred
    if space == "x0":
        return pred, (x - a * pred) / s
    if space == "v":
        norm = a * a + s * s
        return (a * x - s * pred) / norm, (s * x + a * pred) / norm
    if space == "score":
        eps = -s * pred
        return (x - s * eps) / a, eps
    if space == "velocity":
        da, ds = broadcast_like(coeffs.d_alpha_t, x), broadcast_like(coeffs.d_sigma_t, x)
        det = a * ds - s * da
        return (ds * x - s * pred) / det, (a * pred - da * x) / det
    raise ValueError(f"space: expected one of {', '.join(CONTINUOUS_SPACES)}, got {space!r}")


def from_x0_eps(x0: Tensor, eps: Tensor, space: str, x: Tensor, coeffs: PathCoefficients) -> Tensor:
    """The prediction in ``space`` that corresponds to the pair (x0, ε)."""
    a, s = broadcast_like(coeffs.alpha_t, x), broadcast_like(coeffs.sigma_t, x)
    if space == "eps":
        return eps
    if space == "x0":
        return x0
    if space == "v":
        return a * eps - s * x0
    if space == "score":
        return -eps / s
    if space == "velocity":
        da, ds = broadcast_like(coeffs.d_alpha_t, x), broadcast_like(coeffs.d_sigma_t, x)
        return da * x0 + ds * eps
    raise ValueError(f"space: expected one of {', '.join(CONTINUOUS_SPACES)}, got {space!r}")


def convert(
    pred: Tensor, src: str, dst: str, x: Tensor | None = None, coeffs: PathCoefficients | None = None
) -> Tensor:
    """Convert ``pred`` from space ``src`` to space ``dst``.

    Continuous spaces need the current state ``x`` and the path coefficients at its
    time; token spaces need neither. Converting a space to itself returns ``pred``.
    """
    check_space("src", src)
    check_space("dst", dst)
    if src == dst:
        return pred
    if src in TOKEN_SPACES or dst in TOKEN_SPACES:
        if src == "logits" and dst == "logprobs":
            return torch.log_softmax(pred, dim=-1)
        if src == "logprobs" and dst == "logits":
            return pred
        raise ValueError(f"dst: cannot convert between token space {src!r} and continuous space {dst!r}")
    if x is None or coeffs is None:
        raise ValueError(f"coeffs: converting {src!r} to {dst!r} needs the state x and the path coefficients")
    x0, eps = to_x0_eps(pred, src, x, coeffs)
    return from_x0_eps(x0, eps, dst, x, coeffs)
