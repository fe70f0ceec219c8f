"""Argument checks shared by the pure rule functions (:mod:`.functional`) and the rule objects.

Every check is on shapes, dtypes, devices and Python numbers, so none of them
synchronises with an accelerator; values inside tensors are checked at run time
by :mod:`~unified_guidance.core.checks`.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ..core.numbers import check_number
from ..core.shapes import check_pair

__all__ = ["check_branches", "check_number", "check_scale", "wide"]


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
