"""Checks of the flow samplers' arguments: the starting state and the time grid."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from ..core.shapes import check_finite, check_unit_interval


def check_state(name: str, x: Any) -> None:
    """A starting state: a finite floating-point ``(B, ...)`` tensor."""
    if not isinstance(x, Tensor) or x.ndim < 1 or not x.is_floating_point():
        got = f"a {x.dtype} tensor of shape {tuple(x.shape)}" if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"{name}: expected a floating-point (B, ...) tensor, got {got}")
    check_finite(name, x)


def as_times(times: Sequence[float] | Tensor, x0: Tensor, name: str = "times") -> Tensor:
    """``times`` as a strictly monotone float grid in [0, 1] on ``x0``'s device and in its dtype."""
    if isinstance(times, (str, bytes)) or not isinstance(times, (Sequence, Tensor)):
        raise TypeError(f"{name}: expected a sequence of times, got {type(times).__name__} {times!r}")
    try:
        t = torch.as_tensor(times, dtype=torch.float64).reshape(-1)
    except (TypeError, ValueError, RuntimeError):
        raise TypeError(f"{name}: expected numbers, got {times!r}") from None
    if t.numel() < 2:
        raise ValueError(f"{name}: expected at least two times (start and end), got {t.numel()}")
    check_unit_interval(name, t)
    steps = t[1:] - t[:-1]
    if not (bool((steps > 0).all()) or bool((steps < 0).all())):
        raise ValueError(f"{name}: expected strictly increasing or decreasing times, got {t.tolist()}")
    # torchdiffeq evaluates the field at t cast to the state's dtype; keep the grid in it too.
    return t.to(device=x0.device, dtype=x0.dtype if x0.is_floating_point() else torch.get_default_dtype())
