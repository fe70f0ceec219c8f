"""The per-call pieces of a guided call that are not the combination itself.

Each reference's scale at progress τ and the progress τ of ``t`` come with their value
checks queued (:class:`~unified_guidance.core.checks.DeferredChecks`, one read-back per call,
none while ``torch.compile`` traces). :func:`is_unit` is the scale-1 test behind a
reference's skip.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..core.checks import DeferredChecks
from ..core.path import Path
from .spec import Reference


def compiling() -> bool:
    """Whether ``torch.compile`` is tracing this call (decisions on values are then not read back)."""
    return torch.compiler.is_compiling()


def is_unit(scale: Tensor) -> bool:
    """Whether ``scale`` is exactly 1 everywhere (a read-back; under ``torch.compile``: never)."""
    return not compiling() and bool((scale == 1).all())


def scale_at(ref: Reference, tau: Tensor, checks: DeferredChecks) -> Tensor:
    """Reference ``ref``'s scale w(τ), with "finite" and "≥ the rule's minimum" queued as checks."""
    scale = ref.schedule.value(tau)
    checks.finite("scale", scale, f"from the {type(ref.schedule).__name__} schedule")
    rule = ref.rule
    lo = rule.min_scale
    if lo is not None:
        checks.require(
            scale >= lo,
            lambda: f"scale: {type(rule).__name__} expects scales ≥ {lo}, got a minimum of {float(scale.min()):g}",
        )
    return scale


def progress_at(path: Path | None, t: Tensor, checks: DeferredChecks) -> Tensor:
    """Progress τ of ``t`` on ``path`` (``t`` itself without a path), with "τ ∈ [0, 1]" queued as a
    check stated in ``t``."""
    if path is None:
        return t
    tau = path.progress(t)
    tau = tau if tau.is_floating_point() else tau.to(torch.get_default_dtype())
    ends = lambda: path.time(torch.tensor([0.0, 1.0], dtype=torch.float64)).tolist()  # noqa: E731
    checks.require(
        (tau >= 0) & (tau <= 1),
        lambda: (
            f"t: expected times on the model's path, from {ends()[0]:g} (noise) to {ends()[1]:g} (data), "
            f"got values in [{float(t.min()):g}, {float(t.max()):g}]"
        ),
    )
    return tau
