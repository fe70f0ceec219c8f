"""Typed rule objects over the pure functions of :mod:`.functional`.

A :class:`Rule` combines the conditional and reference predictions; a
:class:`PostProcess` then adjusts the guided prediction (rescale, thresholding,
norm cap). Each declares its native ``space``; ``None`` means "any space" —
affine rules whose weights sum to one give the same result in every space, so
the engine converts nothing for them. Non-linear ones run where their paper
defines them, and the engine converts both branches there and back.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ..core.shapes import check_finite
from ..core.spaces import check_space
from . import functional as F


def _check_param(name: str, value: float, *, lo: float | None = None, hi: float | None = None) -> None:
    check_finite(name, value)
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        bounds = f"[{'-inf' if lo is None else lo}, {'inf' if hi is None else hi}]"
        raise ValueError(f"{name}: expected a value in {bounds}, got {value}")


class Rule(ABC):
    """Combines ``cond`` and ``uncond`` at scale ``scale`` and progress ``tau``."""

    space: str | None = None
    min_scale: float | None = None

    @abstractmethod
    def __call__(
        self, cond: Tensor, uncond: Tensor, scale: Tensor, *, tau: Tensor, state: Any = None
    ) -> tuple[Tensor, Any]:
        """Return the guided prediction and the rule's new state (``None`` if it has none)."""

    def compose(self, conds: Sequence[Tensor], uncond: Tensor, weights: Sequence[float]) -> Tensor:
        """The conditional prediction of a composition: ``u + Σ wᵢ(cᵢ − u)`` (Perp-Neg changes it)."""
        return F.multi_cfg(conds, uncond, list(weights))

    def reference_rows(self, state: Any, batch: int) -> Tensor | None:
        """The samples ``(B,)`` bool whose reference branch is still needed (``None``: all of them)."""
        return None

    def zero_output(self, tau: Tensor) -> bool:
        """Whether the rule outputs zero at every progress value in ``tau`` (no forward needed)."""
        return False

    def breakpoints(self) -> tuple[float, ...]:
        """Progress values in (0, 1) where the rule's output jumps (adaptive solvers need them)."""
        return ()

    def check_scale(self, scale: Tensor) -> None:
        if self.min_scale is not None and bool((scale < self.min_scale).any()):
            raise ValueError(
                f"scale: {type(self).__name__} expects scales ≥ {self.min_scale}, "
                f"got a minimum of {float(scale.min()):g}"
            )


@dataclass(frozen=True)
class CFG(Rule):
    """Classifier-free guidance ``u + s(c − u)`` (Ho & Salimans, arXiv 2207.12598). Any space.

    With a reference model in :class:`~.engine.Guidance` this is autoguidance
    (Karras et al., arXiv 2406.02507); with a negative condition, negative prompting.
    """

    def __call__(self, cond, uncond, scale, *, tau, state=None):
        return F.cfg(cond, uncond, scale), None


@dataclass(frozen=True)
class APG(Rule):
    """Adaptive projected guidance (Sadat et al., arXiv 2410.02416); native space x0.

    Args:
        eta: weight of the component parallel to c (0 in the paper; 1 = CFG).
        norm_threshold: clip ‖c − u‖ per sample to this (``None``: no clip).
        momentum: β of the running difference (the paper uses −0.5 … −0.75).
        space: where to apply it; the paper's x0 by default.
    """

    eta: float = 0.0
    norm_threshold: float | None = None
    momentum: float = 0.0
    space: str | None = "x0"
    min_scale = 0.0

    def __post_init__(self) -> None:
        _check_param("eta", self.eta)
        _check_param("momentum", self.momentum, lo=-1.0, hi=1.0)
        if self.norm_threshold is not None:
            _check_param("norm_threshold", self.norm_threshold, lo=0.0)
        if self.space is not None:
            check_space("space", self.space)

    def __call__(self, cond, uncond, scale, *, tau, state=None):
        return F.apg(
            cond, uncond, scale, eta=self.eta, norm_threshold=self.norm_threshold, momentum=self.momentum, state=state
        )


@dataclass(frozen=True)
class CFGZeroStar(Rule):
    """CFG-Zero* (Fan et al., arXiv 2503.18886); native space flow velocity.

    ``α*u + s(c − α*u)`` with α* = ⟨c,u⟩/‖u‖² per sample, and zero output while
    progress τ < ``zero_init`` (the paper zeroes the first few ODE steps, where
    the learned velocity is least accurate).
    """

    zero_init: float = 0.0
    space: str | None = "velocity"
    min_scale = 0.0

    def __post_init__(self) -> None:
        _check_param("zero_init", self.zero_init, lo=0.0, hi=1.0)
        if self.space is not None:
            check_space("space", self.space)

    def __call__(self, cond, uncond, scale, *, tau, state=None):
        out = F.cfg_zero_star(cond, uncond, scale)
        if self.zero_init > 0.0:
            keep = (torch.as_tensor(tau, device=out.device) >= self.zero_init).to(out.dtype)
            out = out * (keep.reshape((-1,) + (1,) * (out.ndim - 1)) if keep.ndim else keep)
        return out, None

    def zero_output(self, tau: Tensor) -> bool:
        return self.zero_init > 0.0 and bool((tau < self.zero_init).all())

    def breakpoints(self) -> tuple[float, ...]:
        return (self.zero_init,) if 0.0 < self.zero_init < 1.0 else ()


class PostProcess(ABC):
    """Adjusts a guided prediction, knowing the conditional one."""

    space: str | None = None

    @abstractmethod
    def __call__(self, guided: Tensor, cond: Tensor) -> Tensor: ...


@dataclass(frozen=True)
class Rescale(PostProcess):
    """Rescaled CFG (Lin et al., arXiv 2305.08891): ``φ·x·std(c)/std(x) + (1 − φ)·x``.

    Applied to x0 by default (the denoised image whose spread over-exposure inflates).
    """

    phi: float = 0.7
    space: str | None = "x0"

    def __post_init__(self) -> None:
        _check_param("phi", self.phi, lo=0.0, hi=1.0)
        if self.space is not None:
            check_space("space", self.space)

    def __call__(self, guided, cond):
        return F.rescale(guided, cond, self.phi)


@dataclass(frozen=True)
class DynamicThreshold(PostProcess):
    """Imagen's dynamic thresholding of x0 (Saharia et al., arXiv 2205.11487)."""

    percentile: float = 0.995
    max_value: float = float("inf")
    space = "x0"

    def __post_init__(self) -> None:
        _check_param("percentile", self.percentile, lo=0.0, hi=1.0)
        if not self.max_value >= 1.0:
            raise ValueError(f"max_value: expected a value ≥ 1, got {self.max_value}")

    def __call__(self, guided, cond):
        return F.dynamic_threshold(guided, self.percentile, self.max_value)


@dataclass(frozen=True)
class StaticClip(PostProcess):
    """Clamp x0 to [−bound, bound] (the data range)."""

    bound: float = 1.0
    space = "x0"

    def __post_init__(self) -> None:
        _check_param("bound", self.bound, lo=0.0)

    def __call__(self, guided, cond):
        return F.static_clip(guided, self.bound)


@dataclass(frozen=True)
class NormCap(PostProcess):
    """Cap ‖guided‖ at ``k``·‖c‖ per sample; in x0 by default, any space on request."""

    k: float = 1.0
    space: str | None = "x0"

    def __post_init__(self) -> None:
        _check_param("k", self.k, lo=0.0)
        if self.space is not None:
            check_space("space", self.space)

    def __call__(self, guided, cond):
        return F.norm_cap(guided, cond, self.k)


from .rules_recent import FDG, TCFG, Adaptive, MamboG, PerpNeg  # noqa: E402  (they subclass Rule)

RULES: dict[str, type[Rule]] = {
    "cfg": CFG,
    "apg": APG,
    "cfg_zero_star": CFGZeroStar,
    "tcfg": TCFG,
    "fdg": FDG,
    "mambo_g": MamboG,
    "perp_neg": PerpNeg,
    "adaptive": Adaptive,
}
POSTPROCESSES: dict[str, type[PostProcess]] = {
    "rescale": Rescale,
    "dynamic_threshold": DynamicThreshold,
    "static_clip": StaticClip,
    "norm_cap": NormCap,
}


def rule_from_name(name: str, **kwargs: Any) -> Rule:
    """Build a registered rule by name; unknown names list the valid ones."""
    if name not in RULES:
        raise ValueError(f"rule: unknown rule {name!r}; valid rules: {', '.join(RULES)}")
    return RULES[name](**kwargs)


def postprocess_from_name(name: str, **kwargs: Any) -> PostProcess:
    """Build a registered post-process by name; unknown names list the valid ones."""
    if name not in POSTPROCESSES:
        raise ValueError(f"post: unknown post-process {name!r}; valid ones: {', '.join(POSTPROCESSES)}")
    return POSTPROCESSES[name](**kwargs)
