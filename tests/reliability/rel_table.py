"""One row of the bad-input table: a call, the exception it must raise, and what its message must name."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Case:
    id: str
    call: Callable[[], object]
    error: type[Exception]
    match: str
