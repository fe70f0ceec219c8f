"""unified_guidance: classifier-free guidance as one tool for diffusion ε-predictors,
flow-matching velocity fields and autoregressive logit models.

    import unified_guidance as ug
    g = ug.Guidance(rule=ug.guidance.CFG(), scale=ug.schedules.Interval(7.5, lo=0.2, hi=0.8))
    guided = ug.guide(model, g)        # same (x, t, cond) signature as model

The paradigm packages (``ug.diffusion``, ``ug.flow``, ``ug.autoregressive``),
``ug.training``, ``ug.networks`` and ``ug.data`` are imported on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

from . import core as core  # ug.core … eagerly
from . import guidance as guidance
from . import perturb as perturb
from . import schedules as schedules
from .core import ConditionalModel, Conditions
from .guidance import Guidance, Reference, guide

__version__ = "0.1.0"

_LAZY = ("diffusion", "flow", "autoregressive", "training", "networks", "data", "evaluation", "demo", "analytic")

__all__ = [
    "ConditionalModel",
    "Conditions",
    "Guidance",
    "Reference",
    "__version__",
    "guide",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'unified_guidance' has no attribute {name!r}")
