"""Typed rules of the 2023–2025 papers: TCFG, FDG, MAMBO-G, Perp-Neg and adaptive guidance.

Each wraps a pure function (:mod:`.functional`, :mod:`.frequency`) and declares its
native space; ``space=None`` means the model's own space (all of these are
non-linear, so the space matters: pass one to convert there and back).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from ..core.spaces import check_space
from . import functional as F
from .frequency import fdg
from .rules import CFG, Rule, _check_param


def _check_space(space: str | None) -> None:
    if space is not None:
        check_space("space", space)


@dataclass(frozen=True)
class TCFG(Rule):
    """Tangential damping CFG (Kwon et al., arXiv 2503.18137): ``u′ + s(c − u′)``,
    u′ = (u·v₁)v₁ with v₁ the top right-singular vector of ``[c; u]`` per sample.

    The paper damps the reference on ε of image models; here the model's space by default.
    """

    space: str | None = None

    def __post_init__(self) -> None:
        _check_space(self.space)

    def __call__(self, cond, uncond, scale, *, tau, state=None):
        return F.tcfg(cond, uncond, scale), None


@dataclass(frozen=True)
class MamboG(Rule):
    """Magnitude-aware guidance (MAMBO-G, arXiv 2508.03442): ``u + s_eff(c − u)``,
    ``s_eff = 1 + (s − 1)·exp(−α‖c − u‖/‖u‖)`` per sample; α = 0 is CFG. Any rank."""

    alpha: float = 8.0
    space: str | None = None

    def __post_init__(self) -> None:
        _check_param("alpha", self.alpha, lo=0.0)
        _check_space(self.space)

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
        object.__setattr__(self, "ratios", tuple(float(r) for r in self.ratios))
        if not self.ratios:
            raise ValueError("ratios: expected one ratio per pyramid band, got none")
        for r in self.ratios:
            _check_param("ratios", r)
        if not isinstance(self.parallel_weights, (int, float)):
            object.__setattr__(self, "parallel_weights", tuple(float(w) for w in self.parallel_weights))
            if len(self.parallel_weights) != len(self.ratios):
                raise ValueError(
                    f"parallel_weights: expected {len(self.ratios)} weights (one per ratio), "
                    f"got {len(self.parallel_weights)}"
                )
        _check_space(self.space)

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
        _check_space(self.space)

    def compose(self, conds: Sequence[Tensor], uncond: Tensor, weights: Sequence[float]) -> Tensor:
        pos = [(c, w) for c, w in zip(conds, weights, strict=True) if w > 0]
        neg = [(c, -w) for c, w in zip(conds, weights, strict=True) if w < 0]
        if not pos:
            raise ValueError(f"weights: PerpNeg needs at least one positive weight, got {tuple(weights)}")
        positive = F.multi_cfg([c for c, _ in pos], uncond, [w for _, w in pos])
        return F.perp_neg(positive, uncond, [c for c, _ in neg], 1.0, [w for _, w in neg])

    def __call__(self, cond, uncond, scale, *, tau, state=None):
        return F.cfg(cond, uncond, scale), None


@dataclass(frozen=True)
class AdaptiveState:
    """Which samples have stopped guiding (``done``, ``(B,)`` bool) and the inner rule's state."""

    done: Tensor
    inner: Any = None


@dataclass(frozen=True)
class Adaptive(Rule):
    """Adaptive guidance (Castillo et al., arXiv 2312.12487): guide with ``rule`` until
    cos(c, u) ≥ ``gamma`` for a sample, then use c alone for the rest of its trajectory.

    Late in sampling the two branches agree and CFG changes little; the engine asks
    :meth:`reference_rows` which samples still need the reference and runs it for
    those rows only, so the saving shows in forward rows. The cosine is taken in the
    inner rule's space. State is per generation (samplers call ``reset``); under an
    adaptive ODE solver it follows evaluation order, like APG's momentum.
    """

    gamma: float = 0.99
    rule: Rule = field(default_factory=CFG)

    def __post_init__(self) -> None:
        _check_param("gamma", self.gamma, lo=-1.0, hi=1.0)
        if not isinstance(self.rule, Rule) or isinstance(self.rule, Adaptive):
            raise TypeError(f"rule: expected a non-adaptive Rule, got {type(self.rule).__name__}")

    @property
    def space(self) -> str | None:  # type: ignore[override]
        return self.rule.space

    @property
    def min_scale(self) -> float | None:  # type: ignore[override]
        return self.rule.min_scale

    def compose(self, conds: Sequence[Tensor], uncond: Tensor, weights: Sequence[float]) -> Tensor:
        return self.rule.compose(conds, uncond, weights)

    def reference_rows(self, state: Any, batch: int) -> Tensor | None:
        if state is None:
            return None
        if state.done.shape[0] != batch:
            raise ValueError(
                f"x: Adaptive tracks {state.done.shape[0]} samples but got a batch of {batch}; "
                "call reset() on the guided model before a new generation"
            )
        return ~state.done

    def __call__(self, cond, uncond, scale, *, tau, state=None):
        inner = state.inner if state is not None else None
        guided, inner = self.rule(cond, uncond, scale, tau=tau, state=inner)
        done = state.done if state is not None else torch.zeros(cond.shape[0], dtype=torch.bool, device=cond.device)
        out = torch.where(done.reshape((-1,) + (1,) * (cond.ndim - 1)), cond, guided)
        return out, AdaptiveState(done | (F.cosine(cond, uncond) >= self.gamma), inner)

    def zero_output(self, tau: Tensor) -> bool:
        return self.rule.zero_output(tau)

    def breakpoints(self) -> tuple[float, ...]:
        return self.rule.breakpoints()
