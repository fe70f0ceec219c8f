"""Measures of generated text, all in this one module: adherence, diversity, degeneration, fluency,
content kept, with bootstrap intervals (the judges of :mod:`.judges` decide adherence by a model).

* adherence to a word set: among the words of an output that belong to the target set T or
  to a contrasting set O, the share from T, ``|w ∈ T| / (|w ∈ T| + |w ∈ O|)`` (e.g. French
  versus English function words, :data:`FRENCH_WORDS` / :data:`ENGLISH_WORDS`); with no
  contrast set, the share of all words that are in T (a topic vocabulary);
* distinct-n (Li et al., arXiv 1510.03055): unique word n-grams / all word n-grams over the
  samples of one prompt; 1 when nothing repeats, small when guidance collapses diversity;
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
from collections.abc import Callable, Iterable, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from ..autoregressive.decoding import distinct_rows
from ..autoregressive.model import check_has_cache, positions_from_mask
from ..compat import transformers as hf
from ..core.numbers import check_int

_WORD = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)?", re.UNICODE)

FRENCH_WORDS = frozenset(
    "le la les un une des du de et est sont être avoir ont en dans pour par sur avec sans ce cette ces il elle "
    "ils elles nous vous je tu que qui quoi où mais ou donc car ne pas plus très aussi comme au aux son sa ses "
    "leur leurs notre votre mon ma mes fait faire peut peuvent bien tout tous toutes entre après avant lorsque "
    "parce quand si se sont c'est d'un d'une l'eau était oui non beaucoup souvent toujours".split()
)
ENGLISH_WORDS = frozenset(
    "the a an and is are be been being have has had of to in on for with without by this that these those it its "
    "they them their we you i he she his her our your my not no yes but or so because when if as at from into "
    "about also very more most can could will would should do does did all some many often always there here "
    "which who what where how".split()
)


def words(text: str) -> list[str]:
    """Lower-cased alphabetic words (apostrophes kept inside words, as in French ``c'est``)."""
    return [w.replace("’", "'") for w in _WORD.findall(text.lower())]


def adherence(text: str, target: Iterable[str], contrast: Iterable[str] | None = None) -> float:
    """Share of target words, as defined in the module docstring; 0 for text without counted words."""
    target = frozenset(target)
    ws = words(text)
    hits = sum(w in target for w in ws)
    if contrast is None:
        return hits / len(ws) if ws else 0.0
    contrast = frozenset(contrast)
    other = sum(w in contrast and w not in target for w in ws)
    return hits / (hits + other) if hits + other else 0.0


def distinct_n(texts: Sequence[str], n: int = 2) -> float:
    """Distinct-n over a set of texts: unique word n-grams / all word n-grams (0 if none)."""
    check_int("n", n, lo=1)
    grams = [g for text in texts for g in _ngrams(words(text), n)]
    return len(set(grams)) / len(grams) if grams else 0.0


def repetition(text: str, n: int = 3) -> float:
    """Share of repeated word n-grams in ``text``: ``1 − unique/all`` (0 when it has no n-gram)."""
    check_int("n", n, lo=1)
    grams = _ngrams(words(text), n)
    return 1.0 - len(set(grams)) / len(grams) if grams else 0.0


def _ngrams(ws: Sequence[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(ws[i : i + n]) for i in range(len(ws) - n + 1)]


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
