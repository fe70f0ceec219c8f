"""The tensor operations behind the perturbations, as pure functions.

* identity attention (PAG, Ahn et al., arXiv 2403.17377): the attention map
  ``softmax(QKᵀ/√d)`` is replaced by the identity, so each query's output is its own value;
* blurred queries (SEG, Hong, arXiv 2408.00760): ``Q`` is smoothed with a Gaussian of
  width σ over the token grid before attention; σ = ∞ replaces every query by their mean;
* a skipped block (SLG/STG, arXiv 2411.18664) needs no function: its output is its input;
* normalized attention (NAG, Chen et al., arXiv 2505.21179): attention outputs of a positive and a
  negative context extrapolated, their per-token L1-norm ratio bounded, blended back.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def identity_attention(query: Tensor, value: Tensor, packed: int = 1) -> Tensor:
    """The output of attention whose map is the identity: ``out_i = v_{p(i)}``.

    ``query`` ``(B, H, Lq, d)``, ``value`` ``(B, Hk, Lk, dv)`` with ``Lk ≥ Lq``. The queries
    are the last ``Lq`` positions of the keys (self-attention; with a KV cache the newest
    tokens), so ``p(i) = Lk − Lq + i``. Grouped-query attention (``H = g·Hk``) repeats each
    value head for its ``g`` query heads. ``packed = g`` where the query axis holds g heads of
    each position instead (transformers' one-token GQA layout). Returns ``(B, H, Lq, dv)``.
    """
    if packed > 1:
        own = value[..., value.shape[-2] - query.shape[-2] // packed :, :]
        return own.repeat_interleave(packed, dim=-2)
    heads, lq, lk = query.shape[-3], query.shape[-2], value.shape[-2]
    if lk < lq:
        raise ValueError(
            f"identity attention: expected at least as many keys as queries (self-attention), "
            f"got {lq} queries and {lk} keys"
        )
    if heads % value.shape[-3]:
        raise ValueError(f"identity attention: {heads} query heads do not group over {value.shape[-3]} value heads")
    out = value[..., lk - lq :, :]
    return out.repeat_interleave(heads // value.shape[-3], dim=-3) if heads != value.shape[-3] else out


def gaussian_matrix(size: int, sigma: float, *, dtype: torch.dtype, device: torch.device) -> Tensor:
    """Row-normalised Gaussian smoothing over ``size`` grid positions ``(size, size)``.

    ``A_ij = exp(−(i − j)²/2σ²) / Σ_j exp(−(i − j)²/2σ²)``: each output is a weighted mean
    of the positions on the grid (the weights renormalised at the borders, so no padding is
    invented). σ → 0 gives the identity, σ = ∞ the plain mean.
    """
    if not sigma > 0:
        raise ValueError(f"sigma: expected σ > 0 (or inf), got {sigma}")
    if math.isinf(sigma):
        return torch.full((size, size), 1.0 / size, dtype=dtype, device=device)
    i = torch.arange(size, dtype=torch.float64, device=device)
    logits = -((i[:, None] - i[None, :]) ** 2) / (2.0 * sigma**2)
    return torch.softmax(logits, dim=1).to(dtype)


def blur_queries(query: Tensor, grid: tuple[int, int], sigma: float) -> Tensor:
    """Queries ``(B, H, L, d)`` smoothed over their ``grid`` ``(h, w)``, ``L = h·w`` (row-major).

    Separable: ``Q′ = A_h Q A_wᵀ`` per head and channel, ``A`` from :func:`gaussian_matrix`.
    σ = ∞ gives every token the mean query.
    """
    h, w = grid
    if h * w != query.shape[-2]:
        raise ValueError(f"grid: expected h·w = {query.shape[-2]} (the attention's token count), got {h}×{w} = {h * w}")
    if math.isinf(sigma):
        return query.mean(dim=-2, keepdim=True).expand_as(query)
    spatial = query.unflatten(-2, (h, w))  # (B, H, h, w, d)
    a_h = gaussian_matrix(h, sigma, dtype=query.dtype, device=query.device)
    a_w = gaussian_matrix(w, sigma, dtype=query.dtype, device=query.device)
    blurred = torch.einsum("ij,...jwd->...iwd", a_h, spatial)
    blurred = torch.einsum("kw,...iwd->...ikd", a_w, blurred)
    return blurred.flatten(-3, -2)


def square_grid(tokens: int) -> tuple[int, int] | None:
    """``(n, n)`` where ``tokens = n²``, else ``None``."""
    n = math.isqrt(tokens)
    return (n, n) if n * n == tokens else None


def normalized_attention(z_pos: Tensor, z_neg: Tensor, scale: Tensor | float, tau: float, alpha: float) -> Tensor:
    """Normalized attention guidance (NAG, Chen et al., arXiv 2505.21179) on attention outputs.

    ``z_pos``, ``z_neg`` ``(B, H, L, d)``: the attention outputs Z⁺, Z⁻ of the same queries read
    against the positive and the negative context (or ``(B, L, d)`` without a head axis).
    ``scale`` w: a number or ``(B,)``, in CFG's convention (w = 1 changes nothing); the paper's
    φ = w − 1. Per token, with ‖·‖₁ over its features (every head's channels)::

        Z̃ = Z⁺ + (w − 1)(Z⁺ − Z⁻)             extrapolation
        r = ‖Z̃‖₁ / ‖Z⁺‖₁,  Ẑ = Z̃ · min(r, τ)/r   the norm ratio bounded by τ
        Z = Z⁺ + α(Ẑ − Z⁺)                      the paper's α·Ẑ + (1 − α)·Z⁺

    w = 1 or α = 0 return Z⁺ exactly (τ ≥ 1), τ = ∞ skips the bound. Returns the shape of ``z_pos``.
    """
    if z_pos.shape != z_neg.shape:
        raise ValueError(f"z_neg: expected the shape of z_pos {tuple(z_pos.shape)}, got {tuple(z_neg.shape)}")
    if isinstance(scale, Tensor) and scale.ndim > 0:
        scale = scale.to(z_pos.dtype).reshape((-1,) + (1,) * (z_pos.ndim - 1))
    features = (-3, -1) if z_pos.ndim == 4 else (-1,)
    extrapolated = z_pos + (scale - 1) * (z_pos - z_neg)
    if not math.isinf(tau):
        ratio = extrapolated.abs().sum(features, keepdim=True) / z_pos.abs().sum(features, keepdim=True)
        extrapolated = extrapolated * torch.where(ratio > tau, tau / ratio, torch.ones_like(ratio))
    return z_pos + alpha * (extrapolated - z_pos)
