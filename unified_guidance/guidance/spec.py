"""What a guided model is told: the :class:`Guidance` (its references, each with a rule and a
scale schedule, and the post-processes), and what it reports: :class:`GuidedPrediction`, :class:`GuidanceStats`.

:class:`~.engine.GuidedModel` carries these out; they live apart so that the engine
reads as the evaluation itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from torch import Tensor

from ..core.model import ConditionalModel
from ..perturb.spec import Perturbation
from ..schedules.scale import Schedule, as_schedule
from .post import PostProcess
from .registry import postprocess_from_name, rule_from_name
from .rules import CFG, Rule


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


@dataclass(frozen=True, init=False)
class Reference:
    """One reference branch r with its own rule and scale schedule w(τ).

    Args:
        source: ``None`` for ∅ (or the call's negative condition), a :class:`ModelReference`,
            a :class:`PerturbedReference` (a bare :class:`~unified_guidance.perturb.Perturbation`
            means one with ``condition="same"``).
        scale: w as a number or schedule, in CFG's convention: w = 1 leaves c unchanged (and
            skips the reference's forward). The PAG/SEG/SLG papers' additive scale s is w = 1 + s.
        rule: how c and r combine (a :class:`Rule` or a registered name; default CFG).
    """

    source: Source
    scale: Schedule
    rule: Rule

    def __init__(
        self, source: Source | Perturbation = None, scale: Schedule | float = 1.0, rule: Rule | str | None = None
    ) -> None:
        if isinstance(source, Perturbation):
            source = PerturbedReference(source)
        elif source is not None and not isinstance(source, (ModelReference, PerturbedReference)):
            raise TypeError(
                "source: expected None (∅ or the negative condition), a ModelReference, a PerturbedReference "
                f"or a Perturbation, got {type(source).__name__}"
            )
        object.__setattr__(self, "source", source)
        object.__setattr__(self, "scale", as_schedule(scale))
        object.__setattr__(self, "rule", CFG() if rule is None else _as_rule(rule))

    @property
    def schedule(self) -> Schedule:
        """The scale w(τ) (a :class:`~unified_guidance.schedules.scale.Schedule`)."""
        return self.scale


@dataclass(frozen=True, init=False)
class Guidance:
    """What to do: the references, each with its rule and scale schedule over progress τ, and
    the post-processes.

    With references r_1 … r_k at scales w_j the guided prediction is

        ĝ = c + Σ_j (g_j − c),   g_j = rule_j(c, r_j, w_j)

    (:func:`~.combine.combine`; for CFG rules ``c + Σ_j (w_j − 1)(c − r_j)``; CFG + PAG:
    ``u + s(c − u) + s_p(c − c_pert)`` at w = 1 + s_p). A reference whose w is 1 is not run
    (g_j = c); one whose rule outputs zero (CFG-Zero*'s first steps) is not run either
    (g_j = 0). With one reference running, ĝ is its rule's output exactly.

    Build it from ``references=(Reference(...), ...)``, or with the shortcuts for the common
    case: ``rule``, ``scale`` and ``reference`` make one :class:`Reference` and ``also`` adds
    more after it (``Guidance(scale=3.0)`` is CFG against ∅;
    ``Guidance(scale=3.0, also=[Reference(pag(...), 4.0)])`` is CFG + PAG).

    Args:
        references: the reference branches, each a :class:`Reference`.
        rule, scale, reference: shortcut for ``references=(Reference(reference, scale, rule),)``.
        also: further :class:`Reference` branches after the shortcut's one.
        post: post-processes applied in order to the guided prediction at every call (rescale,
            thresholding, norm cap, the plausibility mask).
        batch_branches: run the branches as one forward over a stacked batch
            (default); ``False`` runs them one after another to save memory.
        check_finite: raise, naming where it came from, when ``x``, a branch, the rule's
            output or a post-process's output holds NaN or inf, or ``t`` lies outside the
            path's time range; these checks cost one device synchronisation per call
            (:mod:`~unified_guidance.core.checks`). ``False`` turns them all off.
    """

    references: tuple[Reference, ...]
    post: tuple[PostProcess, ...]
    batch_branches: bool
    check_finite: bool

    def __init__(
        self,
        rule: Rule | str | None = None,
        scale: Schedule | float | None = None,
        post: Sequence[PostProcess | str] = (),
        reference: Source | Perturbation = None,
        also: Sequence[Reference] = (),
        batch_branches: bool = True,
        check_finite: bool = True,
        *,
        references: Sequence[Reference] | None = None,
    ) -> None:
        if references is not None:
            given = [n for n, v in (("rule", rule), ("scale", scale), ("reference", reference)) if v is not None]
            if given or also:
                raise TypeError(
                    f"references: given together with {', '.join(given or ['also'])}; pass every branch in "
                    "references=(Reference(...), ...) or use the shortcuts, not both"
                )
            refs = _as_references("references", references)
            if not refs:
                raise ValueError("references: expected at least one Reference, got none")
        else:
            first = Reference(reference, 1.0 if scale is None else scale, rule)
            refs = (first, *_as_references("also", also))
        object.__setattr__(self, "references", refs)
        object.__setattr__(self, "post", _as_posts(post))
        object.__setattr__(self, "batch_branches", bool(batch_branches))
        object.__setattr__(self, "check_finite", bool(check_finite))

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
            points |= set(r.schedule.breakpoints()) | set(r.rule.breakpoints())
        return tuple(sorted(points))


def as_guidance(guidance: Guidance | Schedule | float, name: str = "guidance") -> Guidance:
    """``guidance`` as a :class:`Guidance`: a number or a schedule is the scale of plain CFG against ∅."""
    if isinstance(guidance, Guidance):
        return guidance
    if isinstance(guidance, (Schedule, int, float)) and not isinstance(guidance, bool):
        return Guidance(scale=guidance)
    raise TypeError(f"{name}: expected a number, a Schedule or a Guidance, got {type(guidance).__name__}")


def _as_references(name: str, refs: Sequence[Reference]) -> tuple[Reference, ...]:
    if isinstance(refs, Reference):
        raise TypeError(f"{name}: expected a sequence of references, got one Reference; write {name}=[...]")
    out = tuple(refs)
    for r in out:
        if not isinstance(r, Reference):
            raise TypeError(f"{name}: expected Reference objects, got {type(r).__name__}")
    return out


def _as_posts(post: Sequence[PostProcess | str]) -> tuple[PostProcess, ...]:
    if isinstance(post, (str, PostProcess)):
        raise TypeError(f"post: expected a sequence of post-processes, got {post!r}; write post=({post!r},)")
    posts = tuple(postprocess_from_name(p) if isinstance(p, str) else p for p in post)
    for p in posts:
        if not isinstance(p, PostProcess):
            raise TypeError(f"post: expected PostProcess objects or names, got {type(p).__name__}")
    return posts


@dataclass(frozen=True)
class GuidedPrediction:
    """A guided prediction and its branches, each in the model's space.

    ``cond`` is the conditional prediction (for several weighted conditions, their
    combination u + Σ wᵢ(cᵢ − u), the guided prediction at s = 1); ``references[j]`` is
    reference j's prediction, ``None`` where it was not run.
    """

    guided: Tensor
    cond: Tensor
    references: tuple[Tensor | None, ...]


@dataclass(frozen=True)
class GuidanceStats:
    """Counts over a guided model's calls: ``calls`` to the guided model, reference
    forwards skipped because the scale was 1 (or the rule output zero, or no sample
    needed it any more), and the model rows saved — those skips plus the reference
    rows of samples an :class:`~.adaptive.Adaptive` rule has stopped guiding."""

    calls: int = 0
    skipped_reference: int = 0
    skipped_rows: int = 0


def _as_rule(rule: Rule | str) -> Rule:
    if isinstance(rule, str):
        return rule_from_name(rule)
    if not isinstance(rule, Rule):
        raise TypeError(f"rule: expected a Rule or a rule name, got {type(rule).__name__}")
    return rule
