"""Argument checks shared by the pure rule functions (:mod:`.functional`) and the rule objects.

One validator for both: a rule object checks its hyper-parameters in ``__post_init__`` and its
pure function checks the same arguments with the same call (:func:`check_parameter`,
:func:`check_weights`), so ``MamboG(alpha=-1)`` and ``mambo_g(c, u, 2.0, alpha=-1)`` raise
the same error.

Every check is on shapes, dtypes, devices and Python numbers, so none of them
synchronises with an accelerator; values inside tensors are checked at run time
by :mod:`~unified_guidance.core.checks`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from ..core.numbers import check_number, check_numbers
from ..core.shapes import check_pair

__all__ = [
    "RULE_PARAMETERS",
    "check_branches",
    "check_number",
    "check_parameter",
    "check_scale",
    "check_scales",
    "check_weights",
    "wide",
]

RULE_PARAMETERS: dict[str, tuple[float | None, float | None]] = {
    "eta": (None, None),  # APG's parallel weight
    "momentum": (-1.0, 1.0),  # APG
    "norm_threshold": (0.0, None),  # APG
    "zero_init": (0.0, 1.0),  # CFG-Zero*
    "alpha": (0.0, None),  # MAMBO-G
    "phi": (0.0, 1.0),  # rescaled CFG
    "k": (0.0, None),  # norm cap
    "bound": (0.0, None),  # static clip
}
"""The range ``[lo, hi]`` of each rule hyper-parameter (``None``: open); values must be finite numbers."""


def check_parameter(name: str, value: Any) -> float:
    """A rule hyper-parameter of :data:`RULE_PARAMETERS`: a finite number in its range."""
    lo, hi = RULE_PARAMETERS[name]
    return check_number(name, value, lo=lo, hi=hi)


def check_weights(weights: Any, count: int, name: str) -> float | tuple[float, ...]:
    """Weights of ``count`` terms (FDG's bands, Perp-Neg's negatives): one finite number for all, or one each."""
    if isinstance(weights, (int, float)) and not isinstance(weights, bool):
        return check_number(name, weights)
    return check_numbers(name, weights, length=count, unit="weights")


def check_branches(cond: Any, uncond: Any, names: tuple[str, str] = ("cond", "uncond")) -> None:
    """``cond`` and ``uncond`` are floating tensors ``(B, ...)`` of one shape, dtype and device."""
    for name, value in zip(names, (cond, uncond), strict=True):
        if not isinstance(value, Tensor):
            raise TypeError(f"{name}: expected a tensor, got {type(value).__name__}")
        if not value.is_floating_point():
            raise TypeError(f"{name}: expected a floating-point tensor, got {value.dtype}")
        if value.ndim < 1:
            raise ValueError(f"{name}: expected a (B, ...) tensor, got a 0-dim tensor")
    check_pair(names[0], cond, names[1], uncond)


def check_scale(scale: Any, like: Tensor, name: str = "scale") -> None:
    """A finite number, a 0-dim tensor or one value per sample ``(B,)`` of ``like`` (a tensor's
    values are checked where the engine runs the rule)."""
    if isinstance(scale, (int, float)) and not isinstance(scale, bool):
        check_number(name, scale)
        return
    if not isinstance(scale, Tensor):
        raise TypeError(f"{name}: expected a number or a tensor, got {type(scale).__name__}")
    if scale.ndim and (scale.shape[0] != like.shape[0] or scale.numel() != like.shape[0]):
        raise ValueError(
            f"{name}: expected a scalar or one value per sample (batch {like.shape[0]}), got shape {tuple(scale.shape)}"
        )


def wide(x: Tensor) -> Tensor:
    """``x`` in at least float32: reductions, norms and projections of float16/bfloat16
    predictions overflow (‖x‖² > 65504) or lose their epsilons (1e-12 → 0) otherwise."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def check_scales(scales: Any, like: Tensor, name: str = "scales") -> list[Any]:
    """One scale per band or condition: a non-empty list or tuple (not a string) of :func:`check_scale` values."""
    if isinstance(scales, (str, bytes, Tensor)) or not isinstance(scales, Sequence) or not scales:
        raise TypeError(f"{name}: expected a non-empty list or tuple of scales, got {type(scales).__name__} {scales!r}")
    for i, s in enumerate(scales):
        check_scale(s, like, f"{name}[{i}]")
    return list(scales)
