"""Flow matching: guided velocity fields integrated with torchdiffeq (or Rectified-CFG++ steps).

    model = ug.flow.VelocityModel(net, null_cond=10)
    x, stats = ug.flow.sample(model, ug.Guidance(scale=3.0), noise, labels, method="midpoint", steps=20)
    x, stats = ug.flow.sample(model, 3.0, noise, labels, method="rectified_cfgpp", steps=20)

Time convention: noise at t = 0, data at t = 1, ``x_t = t·x1 + (1 − t)·x0``
(:class:`~unified_guidance.schedules.LinearFlowPath`) unless a model says otherwise.

``wrap_transformer`` and ``sample_with_scheduler`` (diffusers flow transformers, optional
extra ``diffusers``) load :mod:`.interop` on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

from .field import IntegrationError
from .likelihood import log_likelihood
from .loss import flow_matching_loss
from .model import VelocityModel
from .sample import sample, trajectory
from .solvers import SOLVERS

__all__ = [
    "SOLVERS",
    "IntegrationError",
    "VelocityModel",
    "flow_matching_loss",
    "log_likelihood",
    "sample",
    "sample_with_scheduler",
    "trajectory",
    "wrap_transformer",
]

_DIFFUSERS = ("wrap_transformer", "sample_with_scheduler")


def __getattr__(name: str) -> Any:
    if name in _DIFFUSERS:  # diffusers is optional: import it only when asked for
        return getattr(importlib.import_module(".interop", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
