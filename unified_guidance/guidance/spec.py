"""What a guided model is told: the :class:`Guidance` (rule, scale schedule, post-processes,
references), and what it reports: :class:`GuidedPrediction`, :class:`GuidanceStats`.

:class:`~.engine.GuidedModel` carries these out; they live apart so that the engine
reads as the evaluation itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from torch import Tensor

from ..core.model import ConditionalModel
from ..perturb.spec import Perturbation
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
class PerturbedReference:
    """Take the reference branch from the same model under a perturbation (PAG, SEG, SLG).

    Args:
        perturbation: what is done to which modules (:mod:`unified_guidance.perturb`).
        condition: ``"same"`` gives the perturbed model the conditional branch's condition
            (PAG, SEG, SLG as published); ``"null"`` gives it ∅.
    """

    perturbation: Perturbation
    condition: str = "same"

    def __post_init__(self) -> None:
        if not isinstance(self.perturbation, Perturbation):
            raise TypeError(f"perturbation: expected a Perturbation, got {type(self.perturbation).__name__}")
        if self.condition not in ("same", "null"):
            raise ValueError(f"condition: expected 'same' or 'null', got {self.condition!r}")


Source = ModelReference | PerturbedReference | None


@dataclass(frozen=True)
class Reference:
    """One reference branch r with its own rule and scale schedule w(τ).

    Args:
        source: ``None`` for ∅ (or the call's negative condition), a :class:`ModelReference`,
            a :class:`PerturbedReference` (a bare :class:`~unified_guidance.perturb.Perturbation`
            means one with ``condition="same"``).
        scale: w as a number or schedule, in CFG's convention: w = 1 leaves c unchanged (and
            skips the reference's forward). The PAG/SEG/SLG papers' additive scale s is w = 1 + s.
        rule: how c and r combine (any rule; default CFG).
    """

    source: Source | Perturbation = None
    scale: Schedule | float = 1.0
    rule: Rule | str = field(default_factory=CFG)

    def __post_init__(self) -> None:
        if isinstance(self.source, Perturbation):
            object.__setattr__(self, "source", PerturbedReference(self.source))
        elif self.source is not None and not isinstance(self.source, (ModelReference, PerturbedReference)):
            raise TypeError(
                "source: expected None (∅ or the negative condition), a ModelReference, a PerturbedReference "
                f"or a Perturbation, got {type(self.source).__name__}"
            )
        object.__setattr__(self, "rule", _as_rule(self.rule))
        object.__setattr__(self, "scale", as_schedule(self.scale))

    @property
    def schedule(self) -> Schedule:
        assert isinstance(self.scale, Schedule)
        return self.scale


@dataclass(frozen=True)
class Guidance:
    """What to do: a rule, a scale schedule over progress τ, post-processing, the references.

    The first reference is ``(reference, scale, rule)``; ``also`` adds more, each a
    :class:`Reference` with its own source, rule and schedule. With references r₀ … r_k at
    scales w_j the guided prediction is

        ĝ = g₀ + Σ_{j≥1} (g_j − c),   g_j = rule_j(c, r_j, w_j)

    (for CFG rules ``c + Σ_j (w_j − 1)(c − r_j)``; PAG with CFG: ``u + s(c − u) + s_p(c − c_pert)``
    at w₁ = 1 + s_p). A reference whose w is 1 is not run; with one reference running, ĝ is
    its rule's output exactly.

    Args:
        rule: a :class:`Rule` or a registered name (``"cfg"``, ``"apg"``, ``"cfg_zero_star"``).
        scale: a number or a :class:`~unified_guidance.schedules.scale.Schedule`.
        post: post-processes applied in order (rescale, thresholding, norm cap).
        reference: ``None`` for ∅ (or the call's negative condition); a
            :class:`ModelReference` for autoguidance; a :class:`PerturbedReference` (or a bare
            perturbation) for PAG/SEG/SLG.
        also: further :class:`Reference` branches (CFG + PAG: ``also=[Reference(pag(...), 4.0)]``).
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
    reference: Source | Perturbation = None
    also: Sequence[Reference] = ()
    batch_branches: bool = True
    check_finite: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "rule", _as_rule(self.rule))
        object.__setattr__(self, "scale", as_schedule(self.scale))
        if isinstance(self.reference, Perturbation):
            object.__setattr__(self, "reference", PerturbedReference(self.reference))
        elif self.reference is not None and not isinstance(self.reference, (ModelReference, PerturbedReference)):
            raise TypeError(
                "reference: expected None, a ModelReference, a PerturbedReference or a Perturbation, "
                f"got {type(self.reference).__name__}"
            )
        if isinstance(self.also, Reference):
            raise TypeError("also: expected a sequence of references, got one Reference; write also=[...]")
        also = tuple(self.also)
        for r in also:
            if not isinstance(r, Reference):
                raise TypeError(f"also: expected Reference objects, got {type(r).__name__}")
        object.__setattr__(self, "also", also)
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

    @property
    def references(self) -> tuple[Reference, ...]:
        """Every reference, the first one ``(reference, scale, rule)``."""
        return (Reference(self.reference, self.scale, self.rule), *self.also)

    def reference_models(self) -> tuple[ConditionalModel, ...]:
        """The other models the references run (autoguidance), each once."""
        models: list[ConditionalModel] = []
        for r in self.references:
            if isinstance(r.source, ModelReference) and all(m is not r.source.model for m in models):
                models.append(r.source.model)
        return tuple(models)

    def breakpoints(self) -> tuple[float, ...]:
        """Progress values in (0, 1) where the guided prediction jumps: the schedules' and the rules'."""
        points: set[float] = set()
        for r in self.references:
            rule: Rule = r.rule  # type: ignore[assignment]
            points |= set(r.schedule.breakpoints()) | set(rule.breakpoints())
        return tuple(sorted(points))


@dataclass(frozen=True)
class GuidedPrediction:
    """A guided prediction and its branches, each in the model's space.

    ``cond`` is the conditional prediction (for several weighted conditions, their
    combination u + Σ wᵢ(cᵢ − u), the guided prediction at s = 1); ``reference`` is
    the first reference branch, ``None`` where it was skipped; ``also`` the further ones.
    """

    guided: Tensor
    cond: Tensor
    reference: Tensor | None
    also: tuple[Tensor | None, ...] = ()


@dataclass(frozen=True)
class GuidanceStats:
    """Counts over a guided model's calls: ``calls`` to the guided model, reference
    forwards skipped because the scale was 1 (or the rule output zero, or no sample
    needed it any more), and the model rows saved — those skips plus the reference
    rows of samples an :class:`~.rules_recent.Adaptive` rule has stopped guiding."""

    calls: int = 0
    skipped_reference: int = 0
    skipped_rows: int = 0


def _as_rule(rule: Rule | str) -> Rule:
    if isinstance(rule, str):
        return rule_from_name(rule)
    if not isinstance(rule, Rule):
        raise TypeError(f"rule: expected a Rule or a rule name, got {type(rule).__name__}")
    return rule


@dataclass(frozen=True)
class StepPlan:
    """What one guided call skips, known before it runs (:meth:`~.engine.GuidedModel.plan`):
    ``unit[j]`` — reference j's scale is exactly 1; ``zero`` — the first rule outputs zero."""

    unit: tuple[bool, ...]
    zero: bool = False
