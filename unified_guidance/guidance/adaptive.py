"""Adaptive guidance: a rule that stops guiding a sample once its branches agree.

Castillo et al., arXiv 2312.12487. Its state (which samples stopped) is an explicit value
the engine passes in and keeps, like APG's momentum.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from . import functional as F
from .rules import CFG, Rule
from .validation import check_number


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
        check_number("gamma", self.gamma, lo=-1.0, hi=1.0)
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
