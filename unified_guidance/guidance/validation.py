"""Argument checks shared by the pure rule functions (:mod:`.functional`) and the rule objects.

Every check is on shapes, dtypes, devices and Python numbers, so none of them
synchronises with an accelerator; values inside tensors are checked at run time
by :mod:`~unified_guidance.core.checks`.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from ..core.shapes import check_pair


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
    """A finite number, a 0-dim tensor or one value per sample ``(B,)`` of ``like``."""
    if isinstance(scale, bool):
        raise TypeError(f"{name}: expected a number or a tensor, got a bool")
    if isinstance(scale, (int, float)):
        if not math.isfinite(scale):
            raise ValueError(f"{name}: expected a finite number, got {scale}")
        return
    if not isinstance(scale, Tensor):
        raise TypeError(f"{name}: expected a number or a tensor, got {type(scale).__name__}")
    if scale.ndim and (scale.shape[0] != like.shape[0] or scale.numel() != like.shape[0]):
        raise ValueError(
            f"{name}: expected a scalar or one value per sample (batch {like.shape[0]}), got shape {tuple(scale.shape)}"
        )


def check_number(name: str, value: Any, *, lo: float | None = None, hi: float | None = None) -> float:
    """A finite real number in [lo, hi] (either end optional)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name}: expected a number, got {type(value).__name__}")
    if not math.isfinite(value):
        raise ValueError(f"{name}: expected a finite number, got {value}")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        bounds = f"[{'-inf' if lo is None else lo}, {'inf' if hi is None else hi}]"
        raise ValueError(f"{name}: expected a value in {bounds}, got {value}")
    return float(value)


def wide(x: Tensor) -> Tensor:
    """``x`` in at least float32: reductions, norms and projections of float16/bfloat16
    predictions overflow (‖x‖² > 65504) or lose their epsilons (1e-12 → 0) otherwise."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x
