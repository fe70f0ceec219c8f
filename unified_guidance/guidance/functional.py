"""The extrapolation rules as pure functions of tensors.

``cond`` is the conditional prediction c, ``uncond`` the reference prediction u
(null condition, negative condition or weaker model), both ``(B, ...)``;
``scale`` is a number or a ``(B,)`` tensor (s = 1 returns c, s = 0 returns u).
Rules with state (APG's momentum) take it as an argument and return the new one.
Norms, standard deviations and inner products are per sample, over every
non-batch dimension.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from ..core.shapes import broadcast_like
from ..core.shapes import check_finite as check_values_finite
from .validation import check_branches, check_number, check_parameter, check_scale, check_weights, wide


def _per_sample(fn, x: Tensor, **kwargs) -> Tensor:
    """Reduce over every non-batch dimension, keeping them as singletons."""
    return fn(x, dim=tuple(range(1, x.ndim)), keepdim=True, **kwargs)


def _dot(a: Tensor, b: Tensor) -> Tensor:
    """Per-sample ⟨a, b⟩ in at least float32."""
    return _per_sample(torch.sum, wide(a) * wide(b))


def _norm(x: Tensor) -> Tensor:
    """Per-sample ‖x‖ in at least float32."""
    return _per_sample(torch.linalg.vector_norm, wide(x))


def cfg(cond: Tensor, uncond: Tensor, scale: Tensor | float) -> Tensor:
    """Classifier-free guidance: ``u + s·(c − u)`` (Ho & Salimans, arXiv 2207.12598)."""
    check_branches(cond, uncond)
    check_scale(scale, cond)
    return torch.lerp(uncond, cond, broadcast_like(scale, cond))


def multi_cfg(conds: Sequence[Tensor], uncond: Tensor, scales: Sequence[Tensor | float]) -> Tensor:
    """Composition of several conditions: ``u + Σᵢ sᵢ·(cᵢ − u)`` (Liu et al., arXiv 2206.01714)."""
    if len(conds) != len(scales):
        raise ValueError(f"scales: expected {len(conds)} scales (one per condition), got {len(scales)}")
    for i, (c, s) in enumerate(zip(conds, scales, strict=True)):
        check_branches(c, uncond, (f"conds[{i}]", "uncond"))
        check_scale(s, c, f"scales[{i}]")
    out = uncond
    for c, s in zip(conds, scales, strict=True):
        out = out + broadcast_like(s, c) * (c - uncond)
    return out


def rescale(guided: Tensor, cond: Tensor, phi: float) -> Tensor:
    """Rescaled CFG (Lin et al., arXiv 2305.08891):
    ``φ·x·std(c)/std(x) + (1 − φ)·x``, x the guided prediction, std per sample.

    Brings the guided prediction's spread back to that of the conditional one,
    which undoes the over-exposure of high scales. φ = 0 is plain CFG.
    """
    check_branches(guided, cond, ("guided", "cond"))
    check_parameter("phi", phi)
    x = wide(guided)
    std_guided = _per_sample(torch.std, x, correction=0)
    std_cond = _per_sample(torch.std, wide(cond), correction=0)
    # x/std(x) first, then ·std(c): the ratio std(c)/std(x) alone overflows for a tiny spread.
    # A sample with no spread (one element, or constant) has nothing to rescale: factor 1.
    spread = std_guided > 0
    matched = torch.where(spread, x / torch.where(spread, std_guided, 1.0) * std_cond, x)
    return (phi * matched + (1.0 - phi) * x).to(guided.dtype)


def static_clip(x0: Tensor, bound: float = 1.0) -> Tensor:
    """Static thresholding: clamp an x0 prediction to ``[−bound, bound]``."""
    check_parameter("bound", bound)
    return x0.clamp(-bound, bound)


def dynamic_threshold(
    x0: Tensor, percentile: float = 0.995, max_value: float = float("inf"), *, check_finite: bool = True
) -> Tensor:
    """Imagen's dynamic thresholding (Saharia et al., arXiv 2205.11487).

    q = the ``percentile`` quantile of |x0| per sample, clamped to [1, max_value];
    x0 ← clamp(x0, −q, q)/q. Pixels saturate less than under a static clip, because
    a sample that overshoots is shrunk as a whole rather than cut at ±1.

    A NaN or infinite entry would make its whole sample NaN (q = NaN or ∞/∞), so ``x0`` must be
    finite: a ``ValueError`` names it (one read-back; ``check_finite=False`` skips it, as the
    engine's :class:`~.post.DynamicThreshold` does, whose guided call checks its input and output).
    """
    check_number("percentile", percentile, lo=0.0, hi=1.0)
    if not (isinstance(max_value, (int, float)) and max_value >= 1.0):
        raise ValueError(f"max_value: expected a value ≥ 1, got {max_value!r}")
    if not isinstance(x0, Tensor) or x0.ndim < 1 or x0.numel() == 0:
        raise ValueError(f"x0: expected a non-empty (B, ...) tensor, got {x0!r:.60}")
    if check_finite:
        check_values_finite("x0", x0)
    q = broadcast_like(_upper_quantile(x0.abs().reshape(x0.shape[0], -1), percentile), x0)
    q = q.clamp(min=1.0, max=max_value)
    return torch.maximum(torch.minimum(x0, q), -q) / q


def _upper_quantile(flat: Tensor, p: float) -> Tensor:
    """Row-wise ``torch.quantile(flat, p, dim=1)`` (linear interpolation), by a partial sort.

    Only the top ``n − ⌊p(n − 1)⌋`` values of each row are needed; for Imagen's
    p ≈ 0.995 that is a few dozen, so ``topk`` beats the full sort of ``quantile``.
    """
    n = flat.shape[1]
    pos = p * (n - 1)
    lo = min(int(pos), n - 1)
    top = torch.topk(flat, n - lo, dim=1).values  # descending: column j is ascending index n − 1 − j
    below = top[:, -1]
    above = top[:, -2] if n - lo >= 2 else below
    return torch.lerp(below, above, pos - lo)


def norm_cap(guided: Tensor, cond: Tensor, k: float) -> Tensor:
    """Cap the guided prediction's norm at ``k`` times the conditional one's:
    ``x·min(1, k‖c‖/‖x‖)`` per sample (a zero ``x`` is left as it is)."""
    check_branches(guided, cond, ("guided", "cond"))
    check_parameter("k", k)
    norm = _norm(guided)
    ratio = k * _norm(cond) / norm.clamp(min=torch.finfo(norm.dtype).tiny)
    return (wide(guided) * ratio.clamp(max=1.0)).to(guided.dtype)


def optimized_scale(cond: Tensor, uncond: Tensor, eps: float = 1e-12) -> Tensor:
    """CFG-Zero*'s per-sample α* = ⟨c, u⟩/‖u‖² (Fan et al., arXiv 2503.18886), shape ``(B, 1, …)``,
    in at least float32 (α* = 0 where u = 0)."""
    check_branches(cond, uncond)
    return _dot(cond, uncond) / (_dot(uncond, uncond) + eps)


def cfg_zero_star(cond: Tensor, uncond: Tensor, scale: Tensor | float) -> Tensor:
    """CFG-Zero* without the zero-init: ``α*u + s·(c − α*u)``, α* from :func:`optimized_scale`.

    Scaling the reference by the projection of c onto it first removes the part of
    the difference that only reflects a wrongly scaled unconditional velocity.
    """
    alpha = optimized_scale(cond, uncond)
    check_scale(scale, cond)
    return cfg(cond, (alpha * wide(uncond)).to(uncond.dtype), scale)


@dataclass(frozen=True)
class APGState:
    """APG's momentum buffer: the running average of guidance differences."""

    running: Tensor


def project(v: Tensor, onto: Tensor, eps: float = 1e-12) -> tuple[Tensor, Tensor]:
    """Split ``v`` into its component along ``onto`` and the orthogonal rest, per sample
    (computed in at least float32, returned in ``v``'s dtype)."""
    check_branches(v, onto, ("v", "onto"))
    parallel = _dot(v, onto) / (_dot(onto, onto) + eps) * wide(onto)
    return parallel.to(v.dtype), (wide(v) - parallel).to(v.dtype)


def apg(
    cond: Tensor,
    uncond: Tensor,
    scale: Tensor | float,
    *,
    eta: float = 0.0,
    norm_threshold: float | None = None,
    momentum: float = 0.0,
    state: APGState | None = None,
) -> tuple[Tensor, APGState]:
    """Adaptive projected guidance (Sadat et al., arXiv 2410.02416), in x0 space.

    d = c − u, plus ``momentum``·(previous running d) (the paper uses a negative
    momentum); ‖d‖ is clipped to ``norm_threshold``; d splits into d∥ along c and
    d⊥; the result is ``c + (s − 1)·(d⊥ + η·d∥)``. η = 1 with no clipping and no
    momentum is CFG; the default η = 0 drops the parallel part, which is what
    over-saturates. Returns the guided prediction and the new state.
    """
    check_branches(cond, uncond)
    check_scale(scale, cond)
    check_parameter("eta", eta)
    check_parameter("momentum", momentum)
    if norm_threshold is not None:
        check_parameter("norm_threshold", norm_threshold)
    diff = cond - uncond
    if momentum != 0.0 and state is not None:
        if not isinstance(state, APGState) or state.running.shape != diff.shape:
            got = tuple(state.running.shape) if isinstance(state, APGState) else type(state).__name__
            raise ValueError(
                f"state: expected APG momentum for predictions of shape {tuple(diff.shape)}, got {got}; "
                "reset the guided model (GuidedModel.reset) before a new generation"
            )
        diff = diff + momentum * state.running
    new_state = APGState(diff)
    if norm_threshold is not None:
        norm = _norm(diff)
        diff = (wide(diff) * (norm_threshold / norm.clamp(min=1e-12)).clamp(max=1.0)).to(diff.dtype)
    parallel, orthogonal = project(diff, cond)
    return cond + (broadcast_like(scale, cond) - 1.0) * (orthogonal + eta * parallel), new_state


def tangential_reference(cond: Tensor, uncond: Tensor) -> Tensor:
    """TCFG's reference: u projected onto the top right-singular vector v₁ of the stacked ``[c; u]``.

    Per sample, ``[c; u]`` is a 2 × N matrix (N = every non-batch element); its
    first right-singular vector is the direction both predictions share most. The
    projection ``(u·v₁)v₁`` keeps that part of u and drops the tangential rest.
    Computed in at least float32 (an SVD in half precision is not offered by torch).
    """
    check_branches(cond, uncond)
    batch = cond.shape[0]
    work = torch.promote_types(cond.dtype, torch.float32)
    stacked = torch.stack([cond.reshape(batch, -1), uncond.reshape(batch, -1)], dim=1).to(work)
    top = torch.linalg.svd(stacked, full_matrices=False).Vh[:, :1, :]  # (B, 1, N)
    flat_u = stacked[:, 1:, :]
    return ((flat_u @ top.transpose(1, 2)) @ top).reshape(uncond.shape).to(uncond.dtype)


def tcfg(cond: Tensor, uncond: Tensor, scale: Tensor | float) -> Tensor:
    """Tangential damping CFG (Kwon et al., arXiv 2503.18137): ``u′ + s·(c − u′)``, u′ from
    :func:`tangential_reference`. Shapes ``(B, ...)``; any space (the paper: ε of image models).

    Where c and u are parallel, u′ = u and this is CFG.
    """
    reference = tangential_reference(cond, uncond)
    check_scale(scale, cond)
    return cfg(cond, reference, scale)


def mambo_scale(cond: Tensor, uncond: Tensor, scale: Tensor | float, alpha: float) -> Tensor:
    """MAMBO-G's per-sample scale ``1 + (s − 1)·exp(−α‖c − u‖/‖u‖)``, shape ``(B, 1, …)`` (arXiv 2508.03442)."""
    check_branches(cond, uncond)
    check_scale(scale, cond)
    check_parameter("alpha", alpha)
    norm = lambda v: _per_sample(torch.linalg.vector_norm, v)  # noqa: E731
    ratio = norm(cond - uncond) / norm(uncond).clamp(min=torch.finfo(cond.dtype).tiny)
    return 1.0 + (broadcast_like(scale, cond) - 1.0) * torch.exp(-alpha * ratio)


def mambo_g(cond: Tensor, uncond: Tensor, scale: Tensor | float, alpha: float = 8.0) -> Tensor:
    """Magnitude-aware guidance (MAMBO-G, arXiv 2508.03442): ``u + s_eff·(c − u)`` with
    s_eff from :func:`mambo_scale`; tensors ``(B, ...)`` of any rank.

    Where the update is large relative to u (early, high-noise steps, where CFG
    overshoots) the scale falls back towards 1; α = 0 is CFG.
    """
    return cfg(cond, uncond, mambo_scale(cond, uncond, scale, alpha))


def perp_neg(
    cond: Tensor,
    uncond: Tensor,
    negatives: Sequence[Tensor],
    scale: Tensor | float,
    weights: Sequence[float] | float = 1.0,
) -> Tensor:
    """Perp-Neg (Armandpour et al., arXiv 2304.04968): negatives that cannot cancel the positive.

    With d₊ = c − u and dᵢ = nᵢ − u for each negative prediction nᵢ, only the part
    of dᵢ orthogonal to d₊ is subtracted: ``u + s·(d₊ − Σᵢ wᵢ·(dᵢ − proj_{d₊} dᵢ))``.
    A negative that shares the positive's direction (a "dog" when asking for a
    "dog on a beach") then no longer removes the positive. All tensors ``(B, ...)``;
    u is ∅'s prediction (not a negative's).
    """
    check_branches(cond, uncond)
    check_scale(scale, cond)
    if isinstance(negatives, (Tensor, str)) or not isinstance(negatives, Sequence):
        raise TypeError(f"negatives: expected a list or tuple of predictions, got {type(negatives).__name__}")
    for i, n in enumerate(negatives):
        check_branches(uncond, n, ("uncond", f"negatives[{i}]"))
    checked = check_weights(weights, len(negatives), "weights")
    ws = [checked] * len(negatives) if isinstance(checked, float) else list(checked)
    positive = cond - uncond
    update = positive
    for n, w in zip(negatives, ws, strict=True):
        update = update - w * project(n - uncond, positive)[1]
    return uncond + broadcast_like(scale, cond) * update


def cosine(a: Tensor, b: Tensor, eps: float = 1e-12) -> Tensor:
    """Per-sample cosine similarity ⟨a, b⟩/(‖a‖‖b‖), shape ``(B,)`` (adaptive guidance's test)."""
    check_branches(a, b, ("a", "b"))
    norm = lambda v: _per_sample(torch.linalg.vector_norm, v)  # noqa: E731
    return (_dot(a, b) / (norm(a) * norm(b)).clamp(min=eps)).reshape(a.shape[0])
