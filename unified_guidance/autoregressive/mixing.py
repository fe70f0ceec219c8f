"""Next-token guidance: mixing the conditional and reference logits with the engine's rules.

Logit CFG (Sanchez et al., "Stay on topic with classifier-free guidance", arXiv 2306.17806):

    log p̂(w) = log p(w|∅) + s·(log p(w|c) − log p(w|∅))          (space "logprobs", default)

or the same line on raw logits (space "logits"). For CFG the two differ by a
per-row constant only (the log-normalisers mix affinely too), so the guided
*distribution* is the same; rules that are not affine and post-processes see the
difference (the plausibility mask does not: it reads log p(w|c) either way). Mixing probabilities instead would give
negative entries, so it is not offered.

The plausibility mask of contrastive decoding (Li et al., arXiv 2210.15097) keeps
only tokens with ``p(w|c) ≥ α·max_w p(w|c)``: a token the reference finds
unlikely can otherwise be boosted without bound. The combination itself is the
engine's (:func:`~unified_guidance.guidance.combine.combine`), the one the guided model uses.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import Tensor

from ..core.checks import DeferredChecks, NonFiniteError
from ..core.spaces import TOKEN_SPACES, convert
from ..guidance.combine import combine
from ..guidance.plan import StepPlan
from ..guidance.post import PostProcess
from ..guidance.spec import Guidance


@dataclass(frozen=True)
class Mixing:
    """How guided next-token scores are formed.

    Args:
        guidance: references with their rules and scale schedules over token progress τ,
            post-processes (the plausibility mask among them: :class:`PlausibilityMask`).
        space: ``"logprobs"`` (log-softmax, default) or ``"logits"`` (raw).
    """

    guidance: Guidance
    space: str = "logprobs"

    def __post_init__(self) -> None:
        if not isinstance(self.guidance, Guidance):
            raise TypeError(f"guidance: expected a Guidance, got {type(self.guidance).__name__}")
        if self.space not in TOKEN_SPACES:
            raise ValueError(f"space: expected one of {', '.join(TOKEN_SPACES)}, got {self.space!r}")
        rules = [("rule", r.rule) for r in self.guidance.references]
        for what, obj in (*rules, *(("post", p) for p in self.guidance.post)):
            native = getattr(obj, "space", None)
            if native is not None and native not in TOKEN_SPACES:
                raise ValueError(
                    f"guidance: the {what} {type(obj).__name__} runs in space {native!r}, which token models do "
                    f"not have; expected a rule for {' or '.join(TOKEN_SPACES)} (build it with space=None)"
                )
        if self.guidance.reference_models():
            raise ValueError("guidance: a reference model is not supported for token models; pass a negative prompt")


def plausibility_mask(scores: Tensor, cond_logits: Tensor, alpha: float) -> Tensor:
    """Set ``scores`` to −∞ where ``p(w|c) < α·max p(w|c)`` (Li et al., arXiv 2210.15097). ``(R, V)``.

    In log space: ``log p(w|c) < log α + max log p(w|c)``; the arg-max of p(·|c) always stays.
    ``cond_logits`` may be raw logits or log-probs (the log-softmax is the same).
    """
    logp = torch.log_softmax(cond_logits, dim=-1)
    cutoff = logp.max(dim=-1, keepdim=True).values + torch.log(torch.tensor(alpha, dtype=logp.dtype))
    return scores.masked_fill(logp < cutoff, float("-inf"))


@dataclass(frozen=True)
class PlausibilityMask(PostProcess):
    """The plausibility mask as a guidance post-process: :func:`plausibility_mask` with ``alpha``.

    ``Guidance(scale=s, post=(PlausibilityMask(0.1),))``, or ``generate(..., plausibility=0.1)``,
    which appends it to the guidance's post-processes: both mask every token, also where the
    scale is 1. It reads p(w|c) off the conditional scores in either token space.
    """

    alpha: float = 0.1
    space = None

    def __post_init__(self) -> None:
        if isinstance(self.alpha, bool) or not isinstance(self.alpha, (int, float)) or not 0.0 < self.alpha <= 1.0:
            raise ValueError(f"alpha: expected α in (0, 1], got {self.alpha!r}")

    def __call__(self, guided: Tensor, cond: Tensor) -> Tensor:
        return plausibility_mask(guided, cond, self.alpha)


def with_plausibility(guidance: Guidance, alpha: float | None) -> Guidance:
    """``guidance`` with the plausibility mask of ``alpha`` after its post-processes (``None``: as it is)."""
    if alpha is None:
        return guidance
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0.0 < alpha <= 1.0:
        raise ValueError(f"plausibility: expected α in (0, 1], got {alpha!r}")
    return replace(guidance, post=(*guidance.post, PlausibilityMask(float(alpha))))


def guided_scores(
    mixing: Mixing,
    cond_logits: Tensor,
    refs: Sequence[Tensor | None],
    scales: Sequence[Tensor],
    tau: Tensor,
    states: Sequence[Any],
    step: StepPlan | None = None,
) -> tuple[Tensor, list[Any]]:
    """Guided next-token scores ``(R, V)`` in ``mixing.space`` and each reference's new rule state.

    ``cond_logits`` ``(R, V)`` and ``refs[j]`` ``(R, V)`` are raw logits (``None``: reference j's
    rows have left the batch; its scale must then be 1); ``scales[j]`` is a scalar or ``(R,)``.
    The combination is the guided model's (:func:`~unified_guidance.guidance.combine.combine`):
    ``ĝ = c + Σ_j (g_j − c)``, then the post-processes. ``step``: this token's entry of the
    decode's :class:`~unified_guidance.guidance.plan.Plan` (otherwise the scales are read back).
    """
    g = mixing.guidance
    checks = DeferredChecks(g.check_finite)
    checks.finite("conditional logits", cond_logits)
    unit = step.unit if step is not None else [bool((w == 1).all()) for w in scales]
    zero = step.zero if step is not None else [r.rule.zero_output(tau) for r in g.references]
    preds: list[Tensor | None] = []
    for j, ref in enumerate(refs):
        if ref is None or unit[j] or zero[j]:
            preds.append(None)
            continue
        checks.finite("reference logits" if len(refs) == 1 else f"reference {j} logits", ref)
        lo = g.references[j].rule.min_scale
        if lo is not None:
            checks.require(scales[j] >= lo, _scale_message(type(g.references[j].rule).__name__, lo, scales[j]))
        preds.append(convert(ref, "logits", mixing.space))
    c = convert(cond_logits, "logits", mixing.space)
    out = combine(g.references, g.post, c, preds, scales, tau, states, zero=zero, space=mixing.space,
                  convert=convert, trace=lambda *a: _check_scores(checks, *a))  # fmt: skip
    checks.require(
        (out.guided > float("-inf")).any(-1), lambda: "guided scores: every token of some row has score −inf"
    )
    checks.verify()
    return out.guided, list(out.states)


def _check_scores(checks: DeferredChecks, name: str, scores: Tensor, made_by: object) -> None:
    """Scores may be −inf (a masked token) but neither NaN nor +inf."""
    bad = lambda: int((torch.isnan(scores) | (scores == float("inf"))).sum())  # noqa: E731
    origin = lambda: made_by() if callable(made_by) else made_by  # noqa: E731
    checks.require(
        ~torch.isnan(scores) & (scores < float("inf")),
        lambda: f"{name}: expected scores without NaN or +inf, got {bad()} such entries; {origin()}",
        NonFiniteError,
    )


def _scale_message(rule: str, lo: float, scale: Tensor):
    return lambda: f"scale: {rule} expects scales ≥ {lo}, got {scale}"
