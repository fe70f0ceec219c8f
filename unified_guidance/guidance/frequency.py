"""Frequency-decoupled guidance: CFG band by band on a Laplacian pyramid (Sadat et al., arXiv 2506.19713).

The pyramid is Burt & Adelson's: blur with the 5×5 binomial kernel (1 4 6 4 1)ᵀ(1 4 6 4 1)/256
(reflected borders), halve with bilinear resampling; each band is a level minus the
blurred upsampling of the next, the last band is the coarsest level itself. Rebuilding
adds the bands back from coarse to fine, so :func:`rebuild_pyramid` inverts
:func:`laplacian_pyramid` exactly for any filter, and a rule that is the same affine
map on every band (FDG with equal scales) is that map on the image.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from ..core.numbers import check_int
from ..core.shapes import broadcast_like
from .functional import project
from .validation import check_branches, check_scales, check_weights

_BINOMIAL = (1.0, 4.0, 6.0, 4.0, 1.0)


def _check_image(name: str, x: Tensor, levels: int) -> None:
    if not isinstance(x, Tensor) or x.ndim != 4:
        got = f"shape {tuple(x.shape)}" if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(
            f"{name}: expected image-shaped predictions (B, C, H, W) for a Laplacian pyramid, got {got}; "
            "FDG has no meaning for vectors or token logits — use cfg or apg there"
        )
    check_int("levels", levels, lo=1)
    stride = 1 << (levels - 1)
    h, w = x.shape[-2:]
    if h % stride or w % stride or (levels > 1 and min(h, w) // (stride // 2) < 3):
        raise ValueError(
            f"{name}: expected H and W divisible by 2^(levels − 1) = {stride} with every blurred level at least "
            f"3 pixels wide, got {h}×{w} for {levels} levels"
        )


def _blur(x: Tensor) -> Tensor:
    """The 5×5 binomial blur per channel, borders reflected."""
    k1 = torch.tensor(_BINOMIAL, dtype=x.dtype, device=x.device)
    kernel = (k1[:, None] * k1[None, :] / 256.0).expand(x.shape[1], 1, 5, 5)
    return F.conv2d(F.pad(x, (2, 2, 2, 2), mode="reflect"), kernel, groups=x.shape[1])


def _down(x: Tensor) -> Tensor:
    return F.interpolate(_blur(x), size=(x.shape[-2] // 2, x.shape[-1] // 2), mode="bilinear", align_corners=False)


def _up(x: Tensor) -> Tensor:
    return _blur(F.interpolate(x, size=(x.shape[-2] * 2, x.shape[-1] * 2), mode="bilinear", align_corners=False))


def laplacian_pyramid(x: Tensor, levels: int) -> list[Tensor]:
    """Bands of ``x`` ``(B, C, H, W)`` from fine to coarse: ``levels`` tensors, the l-th ``(B, C, H/2ˡ, W/2ˡ)``.

    Band l < levels − 1 is Gₗ − up(Gₗ₊₁) with G₀ = x, Gₗ₊₁ = down(Gₗ); the last band is G_{levels−1}.
    """
    _check_image("x", x, levels)
    gaussian = [x]
    for _ in range(levels - 1):
        gaussian.append(_down(gaussian[-1]))
    bands = [g - _up(g_next) for g, g_next in itertools.pairwise(gaussian)]
    return [*bands, gaussian[-1]]


def rebuild_pyramid(bands: Sequence[Tensor]) -> Tensor:
    """The image of a Laplacian pyramid (fine to coarse): ``x = b₀ + up(b₁ + up(b₂ + …))``."""
    if not bands:
        raise ValueError("bands: expected at least one band, got none")
    x = bands[-1]
    for band in reversed(bands[:-1]):
        x = band + _up(x)
    return x


def fdg(
    cond: Tensor,
    uncond: Tensor,
    scales: Sequence[float],
    parallel_weights: Sequence[float] | float = 1.0,
) -> Tensor:
    """Frequency-decoupled guidance (Sadat et al., arXiv 2506.19713), images ``(B, C, H, W)``.

    With bands cₗ, uₗ of :func:`laplacian_pyramid` (``len(scales)`` levels, fine to
    coarse) and Δₗ = cₗ − uₗ split into Δ∥ along cₗ and Δ⊥ (per sample), each band is
    ``uₗ + sₗ·(w∥ₗ·Δ∥ + Δ⊥)``, and the bands are rebuilt. The paper's advice: a low
    scale for the coarse band (keeps colour and diversity), a high one for the fine
    bands (detail). Equal scales and w∥ = 1 give CFG exactly (the pyramid is linear).

    Args:
        cond, uncond: ``(B, C, H, W)``; H, W divisible by 2^(levels − 1).
        scales: one scale per band, finest first (e.g. ``(10.0, 5.0)``).
        parallel_weights: w∥ per band (or one for all); 1 keeps the parallel part (CFG).
    """
    check_branches(cond, uncond)
    scales = check_scales(scales, cond)
    levels = len(scales)
    _check_image("cond", cond, levels)
    checked = check_weights(parallel_weights, levels, "parallel_weights")
    weights = [checked] * levels if isinstance(checked, float) else checked
    guided = []
    bands = zip(laplacian_pyramid(cond, levels), laplacian_pyramid(uncond, levels), scales, weights, strict=True)
    for c, u, s, w in bands:
        diff = c - u
        if w != 1.0:
            parallel, orthogonal = project(diff, c)
            diff = w * parallel + orthogonal
        guided.append(u + broadcast_like(s, c) * diff)
    return rebuild_pyramid(guided)
