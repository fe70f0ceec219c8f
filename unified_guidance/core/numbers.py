"""The one check of Python numbers handed to the library: a non-number is a ``TypeError``; a
number that is not finite or lies out of its range is a ``ValueError``. Each names the argument,
what was expected and what came."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any


def check_number(name: str, value: Any, *, lo: float | None = None, hi: float | None = None) -> float:
    """``value`` as a float: a finite real number (not a bool) in [lo, hi] (either end optional)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name}: expected a number, got {type(value).__name__} {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{name}: expected a finite number, got {value}")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        bounds = f"[{'-inf' if lo is None else lo}, {'inf' if hi is None else hi}]"
        raise ValueError(f"{name}: expected a value in {bounds}, got {value}")
    return float(value)


def check_int(name: str, value: Any, *, lo: int | None = None) -> int:
    """``value`` as an int: an integer (not a bool, not a float) ≥ ``lo`` (optional)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name}: expected an integer, got {type(value).__name__} {value!r}")
    if lo is not None and value < lo:
        raise ValueError(f"{name}: expected an integer ≥ {lo}, got {value}")
    return value


def check_numbers(
    name: str,
    values: Any,
    *,
    length: int | None = None,
    lo: float | None = None,
    hi: float | None = None,
    unit: str = "numbers",
) -> tuple[float, ...]:
    """``values`` as a tuple of floats: a non-empty list or tuple (not a string: ``"12"`` is no pair of
    numbers) of finite real numbers in [lo, hi], ``length`` of them where given (counted as ``unit``)."""
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        raise TypeError(f"{name}: expected a list or tuple of numbers, got {type(values).__name__} {values!r}")
    out = tuple(check_number(f"{name}[{i}]", v, lo=lo, hi=hi) for i, v in enumerate(values))
    if (length is None and not out) or (length is not None and len(out) != length):
        raise ValueError(f"{name}: expected {'at least one' if length is None else length} {unit}, got {len(out)}")
    return out
