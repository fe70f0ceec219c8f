"""Deprecated: the exact Gaussian mixture moved to :mod:`unified_guidance.data` (``data.mixture``).

``from unified_guidance.analytic import two_d_mixture`` still works and warns
(:class:`DeprecationWarning`); import from :mod:`unified_guidance.data` instead.
"""

from __future__ import annotations

import warnings
from typing import Any

from .data import mixture

_MOVED = ("GaussianMixture", "two_d_mixture")


def __getattr__(name: str) -> Any:
    if name in _MOVED:
        warnings.warn(
            f"unified_guidance.analytic.{name} is deprecated: import it from unified_guidance.data",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(mixture, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
