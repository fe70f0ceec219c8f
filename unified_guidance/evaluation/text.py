"""Measures of generated text: diversity, degeneration, fluency, content kept, with bootstrap intervals.

* distinct-n (Li et al., arXiv 1510.03055): unique word n-grams / all word n-grams over the
  samples of one prompt (:func:`~unified_guidance.autoregressive.metrics.distinct_n`);
* self-BLEU (Zhu et al., Texygen, arXiv 1802.01886): the mean sentence BLEU of each sample
  against the other samples of its prompt, ``(1/K) Σ_k BLEU(x_k; {x_j}_{j≠k}) / 100``
  (sacrebleu); 1 when the samples are copies, 0 when they share no n-gram;
* repetition: the share of repeated word n-grams within one output,
  ``1 − |unique n-grams| / |n-grams|`` (0 for none; loops push it towards 1);
* perplexity of continuations under a causal LM given a prompt,
  ``exp(Σ_rows Σ_t −log p(y_t | prompt, y_<t) / Σ_rows T)``, from :func:`continuation_nll`;
* content kept: whether an output still names a known answer (any of its spellings, as a word);
* :func:`bootstrap_interval`: the percentile bootstrap (Efron & Tibshirani 1993) of a statistic
  over resampled items (outputs, or prompts for the per-prompt measures).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from ..autoregressive.metrics import words
from ..autoregressive.model import positions_from_mask


def repetition(text: str, n: int = 3) -> float:
    """Share of repeated word n-grams in ``text``: ``1 − unique/all`` (0 when it has no n-gram)."""
    if n < 1:
        raise ValueError(f"n: expected an integer ≥ 1, got {n}")
    ws = words(text)
    grams = [tuple(ws[i : i + n]) for i in range(len(ws) - n + 1)]
    return 1.0 - len(set(grams)) / len(grams) if grams else 0.0


def self_bleu(texts: Sequence[str]) -> float:
    """Mean sentence BLEU (sacrebleu, in [0, 1]) of each text against all the others."""
    if len(texts) < 2:
        raise ValueError(f"texts: expected at least 2 samples of a prompt, got {len(texts)}")
    from sacrebleu.metrics import BLEU

    bleu = BLEU(effective_order=True)
    scores = [bleu.sentence_score(t, [o for j, o in enumerate(texts) if j != k]).score for k, t in enumerate(texts)]
    return float(np.mean(scores)) / 100.0


def contains_answer(text: str, answers: Sequence[str]) -> bool:
    """Whether ``text`` contains one of ``answers`` as a whole word (case-insensitive)."""
    if not answers:
        raise ValueError("answers: expected at least one spelling of the answer, got none")
    low = text.lower()
    return any(re.search(rf"(?<!\w){re.escape(a.lower())}(?!\w)", low) for a in answers)


@torch.no_grad()
def continuation_nll(
    lm: nn.Module, prompt_ids: Tensor, prompt_mask: Tensor, cont_ids: Tensor, cont_mask: Tensor
) -> tuple[Tensor, Tensor]:
    """Summed negative log-likelihood of each continuation and its token count, both ``(B,)``.

    ``Σ_t −log p(y_t | prompt, y_<t)`` over the tokens where ``cont_mask`` is 1; prompts
    ``(B, L)`` are left-padded, continuations ``(B, T)`` right-padded (ones, then zeros),
    so one forward with position ids from the joint mask scores every row as if alone.
    """
    if prompt_ids.shape != prompt_mask.shape or cont_ids.shape != cont_mask.shape:
        raise ValueError(
            f"masks: expected the shapes of their ids, got {tuple(prompt_mask.shape)} for {tuple(prompt_ids.shape)} "
            f"and {tuple(cont_mask.shape)} for {tuple(cont_ids.shape)}"
        )
    ids = torch.cat([prompt_ids, cont_ids], dim=1)
    mask = torch.cat([prompt_mask, cont_mask], dim=1).long()
    logits = lm(input_ids=ids, attention_mask=mask, position_ids=positions_from_mask(mask)).logits
    length = prompt_ids.shape[1]
    logp = torch.log_softmax(logits[:, length - 1 : -1].double(), dim=-1)  # predicts cont_ids
    token_logp = logp.gather(-1, cont_ids[..., None]).squeeze(-1)
    keep = cont_mask.to(token_logp.dtype)
    return -(token_logp * keep).sum(1), keep.sum(1)


def perplexity(nll: Tensor | np.ndarray, count: Tensor | np.ndarray) -> float:
    """Corpus perplexity ``exp(Σ nll / Σ count)`` of rows with summed NLLs and token counts (NaN for no token)."""
    total = float(np.sum(np.asarray(count, dtype=float)))
    return float(np.exp(np.sum(np.asarray(nll, dtype=float)) / total)) if total > 0 else float("nan")


def bootstrap_interval(
    statistic: Callable[[np.ndarray], float],
    n_items: int,
    *,
    level: float = 0.95,
    resamples: int = 1000,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval ``(lo, hi)`` of ``statistic(indices)`` over ``n_items`` items.

    ``statistic`` takes an index array (drawn with replacement, length ``n_items``) and
    returns the measure on those items; NaN draws are dropped.
    """
    if n_items < 1:
        raise ValueError(f"n_items: expected at least 1 item, got {n_items}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level: expected a coverage in (0, 1), got {level}")
    rng = np.random.default_rng(seed)
    draws = np.array([statistic(rng.integers(0, n_items, n_items)) for _ in range(resamples)], dtype=float)
    draws = draws[np.isfinite(draws)]
    if draws.size == 0:
        return float("nan"), float("nan")
    tail = (1.0 - level) / 2 * 100
    lo, hi = np.percentile(draws, [tail, 100 - tail])
    return float(lo), float(hi)


def mean_interval(values: Sequence[float], **kwargs) -> tuple[float, float]:
    """:func:`bootstrap_interval` of the mean of ``values``."""
    arr = np.asarray(values, dtype=float)
    return bootstrap_interval(lambda idx: float(arr[idx].mean()), len(arr), **kwargs)
