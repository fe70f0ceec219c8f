"""Next-token guidance: mixing the conditional and reference logits with the engine's rules.

Logit CFG (Sanchez et al., "Stay on topic with classifier-free guidance", arXiv 2306.17806):

    log p̂(w) = log p(w|∅) + s·(log p(w|c) − log p(w|∅))          (space "logprobs", default)

or the same line on raw logits (space "logits"). For CFG the two differ by a
per-row constant only (the log-normalisers mix affinely too), so the guided
*distribution* is the same; rules that are not affine, post-processes and the
plausibility mask see the difference. Mixing probabilities instead would give
negative entries, so it is not offered.

The plausibility mask of contrastive decoding (Li et al., arXiv 2210.15097) keeps
only tokens with ``p(w|c) ≥ α·max_w p(w|c)``: a token the reference finds
unlikely can otherwise be boosted without bound.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ..core.checks import DeferredChecks, NonFiniteError
from ..core.spaces import TOKEN_SPACES, convert
from ..guidance.engine import Guidance
from ..guidance.rules import PostProcess, Rule


@dataclass(frozen=True)
class Mixing:
    """How guided next-token scores are formed.

    Args:
        guidance: rule, scale schedule over token progress τ, post-processes.
        space: ``"logprobs"`` (log-softmax, default) or ``"logits"`` (raw).
        plausibility: α of the contrastive-decoding mask, ``None`` for none.
    """

    guidance: Guidance
    space: str = "logprobs"
    plausibility: float | None = None

    def __post_init__(self) -> None:
        if self.space not in TOKEN_SPACES:
            raise ValueError(f"space: expected one of {', '.join(TOKEN_SPACES)}, got {self.space!r}")
        if self.plausibility is not None and not 0.0 < self.plausibility <= 1.0:
            raise ValueError(f"plausibility: expected α in (0, 1], got {self.plausibility}")
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
    """
    logp = torch.log_softmax(cond_logits, dim=-1)
    cutoff = logp.max(dim=-1, keepdim=True).values + torch.log(torch.tensor(alpha, dtype=logp.dtype))
    return scores.masked_fill(logp < cutoff, float("-inf"))


def _check_scores(checks: DeferredChecks, name: str, scores: Tensor, made_by: object) -> None:
    """Scores may be −inf (a masked token) but neither NaN nor +inf."""
    bad = lambda: int((torch.isnan(scores) | (scores == float("inf"))).sum())  # noqa: E731
    checks.require(
        ~torch.isnan(scores) & (scores < float("inf")),
        lambda: f"{name}: expected scores without NaN or +inf, got {bad()} such entries; made by {made_by!r}",
        NonFiniteError,
    )


@dataclass(frozen=True)
class PlausibilityMask(PostProcess):
    """The plausibility mask as a guidance post-process: :func:`plausibility_mask` with ``alpha``.

    ``Guidance(scale=s, post=(PlausibilityMask(0.1),))`` puts contrastive decoding's α into a
    :class:`~unified_guidance.guidance.Guidance` (a sweep of settings, a class-conditional token
    model). Unlike ``generate(plausibility=α)``, which masks every step, a post-process runs
    only where the reference branch does (the scale is not 1).
    """

    alpha: float = 0.1
    space = "logprobs"  # reads p(w|c) off the conditional scores (log-softmax: raw logits work too)

    def __post_init__(self) -> None:
        if not 0.0 < self.alpha <= 1.0:
            raise ValueError(f"alpha: expected α in (0, 1], got {self.alpha}")

    def __call__(self, guided: Tensor, cond: Tensor) -> Tensor:
        return plausibility_mask(guided, cond, self.alpha)


def guided_scores(
    mixing: Mixing,
    cond_logits: Tensor,
    ref_logits: Tensor | None,
    scale: Tensor,
    tau: Tensor,
    state: Any = None,
) -> tuple[Tensor, Any]:
    """Guided next-token scores ``(R, V)`` in ``mixing.space`` and the rule's new state.

    ``cond_logits``/``ref_logits`` ``(R, V)`` are raw logits; ``ref_logits`` is ``None``
    once the reference rows have left the batch (then the scale must be 1). ``scale`` is
    a scalar or ``(R,)``; where it is exactly 1 the result is the conditional scores.
    One reference: :func:`mixed_scores` with a list of one.
    """
    out, states = mixed_scores(mixing, cond_logits, [ref_logits], [scale], tau, [state])
    return out, states[0]


def mixed_scores(
    mixing: Mixing,
    cond_logits: Tensor,
    refs: Sequence[Tensor | None],
    scales: Sequence[Tensor],
    tau: Tensor,
    states: Sequence[Any],
) -> tuple[Tensor, list[Any]]:
    """Guided scores from the conditional logits and every reference's (``None``: not run, scale 1).

    ``ĝ = g_first + Σ_rest (g_j − c)`` with ``g_j = rule_j(c, r_j, w_j)`` in ``mixing.space``
    (one reference running: its rule's output exactly), then the post-processes, then the
    plausibility mask. Returns the scores ``(R, V)`` and each reference's new rule state.
    """
    g = mixing.guidance
    checks = DeferredChecks(g.check_finite)
    checks.finite("conditional logits", cond_logits)
    c = convert(cond_logits, "logits", mixing.space)
    out, new_states = None, list(states)
    for j, (ref, scale, r) in enumerate(zip(refs, scales, g.references, strict=True)):
        if ref is None or bool((scale == 1).all()):
            continue
        checks.finite("reference logits" if j == 0 else f"reference {j} logits", ref)
        rule: Rule = r.rule  # type: ignore[assignment]
        if rule.min_scale is not None:
            lo = rule.min_scale
            checks.require(scale >= lo, _scale_message(type(rule).__name__, lo, scale))
        guided, new_states[j] = rule(c, convert(ref, "logits", mixing.space), scale, tau=tau, state=states[j])
        _check_scores(checks, "guided scores", guided, rule)
        out = guided if out is None else out + (guided - c)
    if out is None:
        out = c
    else:
        for post in g.post:
            assert isinstance(post, PostProcess)  # Guidance made names into PostProcess objects
            out = post(out, c)
            _check_scores(checks, "post", out, post)
    if mixing.plausibility is not None:
        out = plausibility_mask(out, cond_logits, mixing.plausibility)
    checks.require((out > float("-inf")).any(-1), lambda: "guided scores: every token of some row has score −inf")
    checks.verify()
    return out, new_states


def _scale_message(rule: str, lo: float, scale: Tensor):
    return lambda: f"scale: {rule} expects scales ≥ {lo}, got {scale}"
