"""Measures of generated text: diversity, degeneration, fluency, content kept, with bootstrap intervals.

* distinct-n (Li et al., arXiv 1510.03055): unique word n-grams / all word n-grams over the
  samples of one prompt (:func:`~unified_guidance.autoregressive.metrics.distinct_n`);
* self-BLEU (Zhu et al., Texygen, arXiv 1802.01886): the mean sentence BLEU of each sample
  against the other samples of its prompt, ``(1/K) Σ_k BLEU(x_k; {x_j}_{j≠k}) / 100``
  (sacrebleu); 1 when the samples are copies, 0 when they share no n-gram;
* repetition: the share of repeated word n-grams within one output,
  ``1 − |unique n-grams| / |n-grams|`` (0 for none; loops push it towards 1);
* perplexity of continuations under a causal LM given a prompt,
  ``exp(Σ_rows Σ_t −log p(y_t | prompt, y_<t) / Σ_rows T)``, from :func:`continuation_nll`
  (one forward per batch) or :class:`PromptScorer` (each distinct prompt run once, its KV
  cache reused for every continuation: the same numbers, to rounding);
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

from ..autoregressive.decoding import distinct_rows
from ..autoregressive.metrics import words
from ..autoregressive.model import check_has_cache, positions_from_mask
from ..compat import transformers as hf
from ..core.numbers import check_int


def repetition(text: str, n: int = 3) -> float:
    """Share of repeated word n-grams in ``text``: ``1 − unique/all`` (0 when it has no n-gram)."""
    check_int("n", n, lo=1)
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


def _check_masks(prompt_ids: Tensor, prompt_mask: Tensor, cont_ids: Tensor, cont_mask: Tensor) -> None:
    if prompt_ids.shape != prompt_mask.shape or cont_ids.shape != cont_mask.shape:
        raise ValueError(
            f"masks: expected the shapes of their ids, got {tuple(prompt_mask.shape)} for {tuple(prompt_ids.shape)} "
            f"and {tuple(cont_mask.shape)} for {tuple(cont_ids.shape)}"
        )


def token_nll(logits: Tensor, cont_ids: Tensor, cont_mask: Tensor) -> tuple[Tensor, Tensor]:
    """``(Σ_t m_t·(logsumexp(z_t) − z_t[y_t]), Σ_t m_t)`` per row ``= Σ_t −log p(y_t)·m_t``: logits
    ``z`` ``(B, T, V)`` predicting ``cont_ids`` ``(B, T)`` where ``cont_mask`` is 1. Returns ``(B,)``, ``(B,)``.

    The log-normaliser is taken in the logits' precision (at least float32; max-subtracted, a
    relative error ~1e-8 of a float32 row's NLL against float64), one row at a time: a
    float64 copy of the whole ``(B, T, V)`` tensor cost more than the forward that made it.
    """
    work = torch.promote_types(logits.dtype, torch.float32)
    lse = torch.cat([row.to(work).logsumexp(-1) for row in logits.split(1)]).double()
    target = logits.gather(-1, cont_ids[..., None]).squeeze(-1).double()
    keep = cont_mask.double()
    return ((lse - target) * keep).sum(1), keep.sum(1)


@torch.no_grad()
def continuation_nll(
    lm: nn.Module, prompt_ids: Tensor, prompt_mask: Tensor, cont_ids: Tensor, cont_mask: Tensor
) -> tuple[Tensor, Tensor]:
    """Summed negative log-likelihood of each continuation and its token count, both ``(B,)``.

    ``Σ_t −log p(y_t | prompt, y_<t)`` over the tokens where ``cont_mask`` is 1; prompts
    ``(B, L)`` are left-padded, continuations ``(B, T)`` right-padded (ones, then zeros),
    so one forward with position ids from the joint mask scores every row as if alone.
    """
    _check_masks(prompt_ids, prompt_mask, cont_ids, cont_mask)
    ids = torch.cat([prompt_ids, cont_ids], dim=1)
    mask = torch.cat([prompt_mask, cont_mask], dim=1).long()
    logits = lm(input_ids=ids, attention_mask=mask, position_ids=positions_from_mask(mask)).logits
    length = prompt_ids.shape[1]
    return token_nll(logits[:, length - 1 : -1], cont_ids, cont_mask)  # position t predicts token t + 1


class PromptScorer:
    """:func:`continuation_nll` for many continuations of a few prompts, each prompt run once.

    The distinct rows of ``prompts`` (left-padded ``(P, L)`` ids and mask) run through ``lm``
    once, keeping their KV cache and the logits of their last position (which predict every
    continuation's first token). A call scores continuations ``(B, T)`` of prompts ``rows``
    ``(B,)``: one cached forward over the continuations' first ``T − 1`` tokens on a copy of
    their prompts' cache rows, so a prompt costs nothing per continuation. The numbers equal
    :func:`continuation_nll` on the prompts ``prompt_ids[rows]`` up to rounding.
    """

    @torch.no_grad()
    def __init__(self, lm: nn.Module, prompt_ids: Tensor, prompt_mask: Tensor) -> None:
        _check_masks(prompt_ids, prompt_mask, prompt_ids, prompt_mask)
        self.lm, self.mask = lm, prompt_mask.long()
        self._keyword = check_has_cache(lm)
        first, self._group = distinct_rows(prompt_ids, self.mask)
        mask = self.mask[first]
        kwargs = {"logits_to_keep": 1} if hf.keeps_last_logits(hf.forward_parameters(lm)) else {}
        out = lm(
            input_ids=prompt_ids[first], attention_mask=mask, position_ids=positions_from_mask(mask),
            use_cache=True, **{self._keyword: hf.new_dynamic_cache(lm.config)}, **kwargs,
        )  # fmt: skip
        self._cache, self._last = hf.returned_cache(out), out.logits[:, -1]

    @torch.no_grad()
    def __call__(self, rows: Tensor, cont_ids: Tensor, cont_mask: Tensor) -> tuple[Tensor, Tensor]:
        """Summed NLL of continuation ``b`` given prompt ``rows[b]``, and its token count, both ``(B,)``."""
        rows = torch.as_tensor(rows, dtype=torch.long)
        prompts = self.mask.shape[0]
        if rows.shape != cont_ids.shape[:1] or not bool(((rows >= 0) & (rows < prompts)).all()):
            raise ValueError(
                f"rows: expected one prompt index in 0 … {prompts - 1} per continuation, shape "
                f"({cont_ids.shape[0]},), got {rows.tolist()}"
            )
        _check_masks(self.mask[rows], self.mask[rows], cont_ids, cont_mask)
        group = self._group[rows]
        logits = self._last[group][:, None]
        if cont_ids.shape[1] > 1:
            mask = torch.cat([self.mask[rows], cont_mask[:, :-1].long()], dim=1)
            out = self.lm(
                input_ids=cont_ids[:, :-1], attention_mask=mask,
                position_ids=positions_from_mask(mask)[:, self.mask.shape[1] :], use_cache=True,
                **{self._keyword: hf.cache_rows(self._cache, group)},
            )  # fmt: skip
            logits = torch.cat([logits, out.logits], dim=1)
        return token_nll(logits, cont_ids, cont_mask)


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
