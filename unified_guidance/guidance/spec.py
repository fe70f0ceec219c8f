"""What a guided model is told: the :class:`Guidance` (rule, scale schedule, post-processes,
reference), and what it reports: :class:`GuidedPrediction`, :class:`GuidanceStats`.

:class:`~.engine.GuidedModel` carries these out; they live apart so that the engine
reads as the evaluation itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from torch import Tensor

from ..core.model import ConditionalModel
from ..schedules.scale import Schedule, as_schedule
from .rules import CFG, PostProcess, Rule, postprocess_from_name, rule_from_name


@dataclass(frozen=True)
class ModelReference:
    """Take the reference branch from another model (autoguidance, Karras et al., arXiv 2406.02507).

    Args:
        model: the weaker model (smaller or less trained), same space and path.
        condition: ``"same"`` gives it the conditional branch's condition (autoguidance);
            ``"null"`` gives it ∅.
    """

    model: ConditionalModel
    condition: str = "same"

    def __post_init__(self) -> None:
        if self.condition not in ("same", "null"):
            raise ValueError(f"condition: expected 'same' or 'null', got {self.condition!r}")


@dataclass(frozen=True)
class Guidance:
    """What to do: a rule, a scale schedule over progress τ, post-processing, a reference.

    Args:
        rule: a :class:`Rule` or a registered name (``"cfg"``, ``"apg"``, ``"cfg_zero_star"``).
        scale: a number or a :class:`~unified_guidance.schedules.scale.Schedule`.
        post: post-processes applied in order (rescale, thresholding, norm cap).
        reference: ``None`` for ∅ (or the call's negative condition); a
            :class:`ModelReference` for autoguidance.
        batch_branches: run the branches as one forward over a stacked batch
            (default); ``False`` runs them one after another to save memory.
        check_finite: raise, naming where it came from, when ``x``, a branch, the rule's
            output or a post-process's output holds NaN or inf, or ``t`` lies outside the
            path's time range; these checks cost one device synchronisation per call
            (:mod:`~unified_guidance.core.checks`). ``False`` turns them all off.
    """

    rule: Rule | str = field(default_factory=CFG)
    scale: Schedule | float = 1.0
    post: Sequence[PostProcess | str] = ()
    reference: ModelReference | None = None
    batch_branches: bool = True
    check_finite: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.rule, str):
            object.__setattr__(self, "rule", rule_from_name(self.rule))
        elif not isinstance(self.rule, Rule):
            raise TypeError(f"rule: expected a Rule or a rule name, got {type(self.rule).__name__}")
        object.__setattr__(self, "scale", as_schedule(self.scale))
        if isinstance(self.post, (str, PostProcess)):
            raise TypeError(
                f"post: expected a sequence of post-processes, got {self.post!r}; write post=({self.post!r},)"
            )
        posts = tuple(postprocess_from_name(p) if isinstance(p, str) else p for p in self.post)
        for p in posts:
            if not isinstance(p, PostProcess):
                raise TypeError(f"post: expected PostProcess objects or names, got {type(p).__name__}")
        object.__setattr__(self, "post", posts)

    @property
    def schedule(self) -> Schedule:
        assert isinstance(self.scale, Schedule)
        return self.scale

    def breakpoints(self) -> tuple[float, ...]:
        """Progress values in (0, 1) where the guided prediction jumps: the schedule's and the rule's."""
        rule: Rule = self.rule  # type: ignore[assignment]
        return tuple(sorted(set(self.schedule.breakpoints()) | set(rule.breakpoints())))


@dataclass(frozen=True)
class GuidedPrediction:
    """A guided prediction and its branches, each in the model's space.

    ``cond`` is the conditional prediction (for several weighted conditions, their
    combination u + Σ wᵢ(cᵢ − u), the guided prediction at s = 1); ``reference`` is
    the reference branch, ``None`` where it was skipped.
    """

    guided: Tensor
    cond: Tensor
    reference: Tensor | None


@dataclass(frozen=True)
class GuidanceStats:
    """Counts over a guided model's calls: ``calls`` to the guided model, reference
    forwards skipped because the scale was 1 (or the rule output zero, or no sample
    needed it any more), and the model rows saved — those skips plus the reference
    rows of samples an :class:`~.rules_recent.Adaptive` rule has stopped guiding."""

    calls: int = 0
    skipped_reference: int = 0
    skipped_rows: int = 0
