"""The rules: how the conditional prediction c and a reference r combine at scale s.

A :class:`Rule` is a thin typed object over a pure function of :mod:`.functional` or
:mod:`.frequency`; it declares its native ``space``: ``None`` means "any space" — affine rules
whose weights sum to one (CFG) give the same result in every space, so the engine converts
nothing for them; the others run where their paper defines them (or where ``space`` says), and
the engine converts both branches there and back. Post-processes are in :mod:`.post`,
adaptive guidance (a rule that stops guiding) in :mod:`.adaptive`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ..core.numbers import check_numbers
from ..core.spaces import check_space
from . import functional as F
from .frequency import fdg
from .validation import check_parameter, check_weights


def check_space_or_none(space: str | None) -> None:
    """A rule's ``space``: ``None`` (the model's own) or a known prediction space."""
    if space is not None:
        check_space("space", space)


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
        check_parameter("eta", self.eta)
        check_parameter("momentum", self.momentum)
        if self.norm_threshold is not None:
            check_parameter("norm_threshold", self.norm_threshold)
        check_space_or_none(self.space)

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
        check_parameter("zero_init", self.zero_init)
        check_space_or_none(self.space)

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


@dataclass(frozen=True)
class TCFG(Rule):
    """Tangential damping CFG (Kwon et al., arXiv 2503.18137): ``u′ + s(c − u′)``,
    u′ = (u·v₁)v₁ with v₁ the top right-singular vector of ``[c; u]`` per sample.

    The paper damps the reference on ε of image models; here the model's space by default.
    """

    space: str | None = None

    def __post_init__(self) -> None:
        check_space_or_none(self.space)

    def __call__(self, cond, uncond, scale, *, tau, state=None):
        return F.tcfg(cond, uncond, scale), None


@dataclass(frozen=True)
class MamboG(Rule):
    """Magnitude-aware guidance (MAMBO-G, arXiv 2508.03442): ``u + s_eff(c − u)``,
    ``s_eff = 1 + (s − 1)·exp(−α‖c − u‖/‖u‖)`` per sample; α = 0 is CFG. Any rank."""

    alpha: float = 8.0
    space: str | None = None

    def __post_init__(self) -> None:
        check_parameter("alpha", self.alpha)
        check_space_or_none(self.space)

    def __call__(self, cond, uncond, scale, *, tau, state=None):
        return F.mambo_g(cond, uncond, scale, self.alpha), None


@dataclass(frozen=True)
class FDG(Rule):
    """Frequency-decoupled guidance (Sadat et al., arXiv 2506.19713) on image-shaped predictions.

    Band l (finest first) gets the scale ``1 + (s − 1)·ratios[l]`` — so the guidance
    schedule's s still means one thing (s = 1 is c, and the reference is skipped) —
    and parallel weight ``parallel_weights[l]``; native space x0 (the denoised image).
    ``ratios=(1.0, 0.5)`` is the paper's "high scale for detail, low for layout" at
    half the guidance strength in the coarse band.
    """

    ratios: tuple[float, ...] = (1.0, 0.5)
    parallel_weights: tuple[float, ...] | float = 1.0
    space: str | None = "x0"

    def __post_init__(self) -> None:
        object.__setattr__(self, "ratios", check_numbers("ratios", self.ratios))
        object.__setattr__(
            self, "parallel_weights", check_weights(self.parallel_weights, len(self.ratios), "parallel_weights")
        )
        check_space_or_none(self.space)

    def __call__(self, cond, uncond, scale, *, tau, state=None):
        scales = [1.0 + (scale - 1.0) * r for r in self.ratios]
        return fdg(cond, uncond, scales, self.parallel_weights), None


@dataclass(frozen=True)
class PerpNeg(Rule):
    """Perp-Neg (Armandpour et al., arXiv 2304.04968) over a composition with negative weights.

    Use it with ``Conditions.compose([(positive, 1.0), (negative, -w)])``: the
    positive-weight conditions form d₊ = Σ wᵢ(cᵢ − u), and of each negative only the
    part orthogonal to d₊ is subtracted, ``u + s·(d₊ − Σ |wⱼ|·(dⱼ − proj_{d₊} dⱼ))``,
    u = ∅'s prediction. With a single condition it is CFG.
    """

    space: str | None = None

    def __post_init__(self) -> None:
        check_space_or_none(self.space)

    def compose(self, conds: Sequence[Tensor], uncond: Tensor, weights: Sequence[float]) -> Tensor:
        pos = [(c, w) for c, w in zip(conds, weights, strict=True) if w > 0]
        neg = [(c, -w) for c, w in zip(conds, weights, strict=True) if w < 0]
        if not pos:
            raise ValueError(f"weights: PerpNeg needs at least one positive weight, got {tuple(weights)}")
        positive = F.multi_cfg([c for c, _ in pos], uncond, [w for _, w in pos])
        return F.perp_neg(positive, uncond, [c for c, _ in neg], 1.0, [w for _, w in neg])

    def __call__(self, cond, uncond, scale, *, tau, state=None):
        return F.cfg(cond, uncond, scale), None
