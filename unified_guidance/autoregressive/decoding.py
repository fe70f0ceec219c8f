"""Rows of a batch decoded together with one KV cache: the cached twin of ``CausalLMModel.predict``.

Guidance puts the conditional rows and the reference rows into one batch
(``[cond_0 … cond_{n−1}, ref_0 … ref_{n−1}, …]``, a block of n rows per reference), each
row left-padded with its own attention mask and position ids, so one forward and one cache
serve every branch; a perturbed reference's block runs under its perturbation (its rows only).
A guidance-free model's rows are fed their strength β (:meth:`ReferenceBlocks.strengths`): the
prompt's block, and a perturbed block on the same prompt, take the step's β, other blocks 1.
Beam search reorders the rows (:meth:`RowDecoder.select`); once a reference's scale stays 1
its rows leave the batch and the cache, and rows that ended leave with their reference rows
(:func:`kept_rows`). Identical prompt rows (one prompt sampled several times, a shared negative
prompt) are run once by the prefill, unless a perturbation acts on some of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from ..compat import transformers as hf
from ..guidance.plan import Plan
from ..guidance.spec import PerturbedReference, Reference
from ..perturb import Perturbation, Rows, perturbed
from ..perturb.hooks import Selections
from .model import CausalLMModel, left_pad
from .progress import FoldPlan

Perturbations = Sequence[tuple[Perturbation, Rows]]


def stack_prompts(prompts: list[tuple[Tensor, Tensor]], pad_token_id: int) -> tuple[Tensor, Tensor]:
    """Concatenate left-padded prompts ``(Rᵢ, Lᵢ)`` of different lengths along the batch,
    left-padding each to the longest. Returns ids and mask ``(ΣRᵢ, max Lᵢ)``."""
    length = max(ids.shape[1] for ids, _ in prompts)
    padded = [left_pad(ids, mask, length, pad_token_id) for ids, mask in prompts]
    return torch.cat([p[0] for p in padded]), torch.cat([p[1] for p in padded])


def kept_rows(keep: Tensor, blocks: int) -> Tensor:
    """Indices of the rows to keep of a batch of ``blocks`` blocks of ``m = len(keep)`` rows each
    (``[cond; ref; …]``): ``b·m + j`` for every block ``b`` and every ``j`` with ``keep[j]``,
    block-major, so row ``j`` of each block stays beside its partners. ``(m,) bool -> (blocks·Σkeep,)``."""
    j = keep.nonzero().squeeze(1)
    return (torch.arange(blocks, device=j.device)[:, None] * keep.shape[0] + j).reshape(-1)


def distinct_rows(ids: Tensor, mask: Tensor, beta: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """The first row of each group of identical rows (same ids and mask, and same strength ``beta``
    ``(R,)`` where given), in order, and each row's group: ``rows[inverse]`` are the rows again.
    ``(R, L), (R, L) -> (U,), (R,)``."""
    rows = torch.cat([ids, mask.to(ids.dtype)], dim=1)
    if beta is not None:  # rows fed different β are different rows
        rows = torch.cat([rows, torch.unique(beta, return_inverse=True)[1].to(rows)[:, None]], dim=1)
    _, group = torch.unique(rows, dim=0, return_inverse=True)
    first = torch.full((int(group.max()) + 1,), rows.shape[0], dtype=torch.long, device=ids.device)
    first = first.scatter_reduce(0, group, torch.arange(rows.shape[0], device=ids.device), "amin")
    order = first.argsort()  # groups in order of first appearance
    rank = torch.empty_like(order)
    rank[order] = torch.arange(order.shape[0], device=ids.device)
    return first[order], rank[group]


class RowDecoder:
    """Incremental next-token logits for the rows of a prompt batch, with one KV cache.

    Args:
        model: the adapter whose :meth:`~CausalLMModel.step` runs the forward (and counts it).
        ids, mask: the left-padded prompts ``(R, L)``.
    """

    def __init__(self, model: CausalLMModel, ids: Tensor, mask: Tensor) -> None:
        self.model = model
        self.mask = mask
        self.cache: Any = hf.new_dynamic_cache(model.lm.config)
        self._selected: Selections = {}  # the modules each perturbation acts on, found once
        self._prompt = ids

    @property
    def rows(self) -> int:
        return self.mask.shape[0]

    def prefill(self, perturbations: Perturbations = (), beta: Tensor | None = None) -> Tensor:
        """Run the prompts; the logits of each row's first new token ``(R, V)``.

        ``perturbations``: ``(perturbation, rows)`` acting on some rows (a perturbed reference);
        ``beta`` ``(R,)``: each row's strength (a guidance-free model). Without perturbations,
        identical rows run once (:func:`distinct_rows`; the model counts the rows it ran); their
        cache rows and logits are then repeated."""
        first, inverse = distinct_rows(self._prompt, self.mask, beta)
        repeated = first.shape[0] < self.rows and not perturbations
        ids, mask = (self._prompt[first], self.mask[first]) if repeated else (self._prompt, self.mask)
        if repeated and beta is not None:
            beta = beta[first.to(beta.device)]
        logits, cache = self._step(ids, perturbations, mask, beta)
        if cache is None:
            raise ValueError(f"model: expected {type(self.model.lm).__name__} to return a KV cache, got None")
        self.cache = cache
        if repeated:
            hf.reorder_cache(self.cache, inverse)
            logits = logits[inverse]
        return logits

    def step(self, tokens: Tensor, perturbations: Perturbations = (), beta: Tensor | None = None) -> Tensor:
        """Append one token per row ``(R,)``, fed strength ``beta`` ``(R,)`` (a guidance-free model;
        its cache keeps it); the logits of the next one ``(R, V)``."""
        if tokens.shape != (self.rows,):
            raise ValueError(f"tokens: expected shape ({self.rows},), got {tuple(tokens.shape)}")
        self.mask = torch.cat([self.mask, self.mask.new_ones((self.rows, 1))], dim=1)
        logits, self.cache = self._step(tokens[:, None], perturbations, self.mask, beta)
        return logits

    def _step(
        self, ids: Tensor, perturbations: Perturbations, mask: Tensor, beta: Tensor | None = None
    ) -> tuple[Tensor, Any]:
        if not perturbations:
            return self.model.step(ids, mask, self.cache, beta)
        return self._perturbed_step(ids, perturbations, mask, beta)

    @torch.compiler.disable  # hooks installed per call cannot be traced: this step runs eagerly
    def _perturbed_step(
        self, ids: Tensor, perturbations: Perturbations, mask: Tensor, beta: Tensor | None
    ) -> tuple[Tensor, Any]:
        with perturbed(self.model, perturbations, self._selected):
            return self.model.step(ids, mask, self.cache, beta)

    def select(self, index: Tensor) -> None:
        """Keep (and reorder, repeat) rows: row ``i`` becomes old row ``index[i]``.

        Beam search calls this with each beam's parent; dropping the reference rows
        or ended rows calls it with :func:`kept_rows`.
        """
        index = index.to(self.mask.device)
        self.mask = self.mask[index]
        if hf.cache_length(self.cache) > 0:
            hf.reorder_cache(self.cache, index)


class ReferenceBlocks:
    """The blocks of n rows in a decode batch: ``None`` (the prompt), then each guiding reference ``j``.

    Reference j's rows hold the reference prompt (∅ or the negative) or, for a perturbed
    reference with ``condition="same"``, the prompt itself; a perturbed block runs under its
    perturbation.
    """

    def __init__(self, references: Sequence[Reference], plan: Plan, n: int, fold: FoldPlan | None = None) -> None:
        self.refs, self.n, self.fold = references, n, fold
        # block j leaves at this step (a guidance-free model's folded reference: once it is only folded)
        until = plan.unused_from if fold is None else lambda j: fold.unused_from(plan, j)
        self.until = [until(j) for j in range(len(references))]

    def live(self, step: int) -> tuple[int | None, ...]:
        return (None, *(j for j, until in enumerate(self.until) if step < until))

    def _same(self, j: int | None) -> bool:
        """Whether block j holds the prompt itself (the prompt's block, a perturbed reference on it)."""
        source = None if j is None else self.refs[j].source
        return j is None or (isinstance(source, PerturbedReference) and source.condition == "same")

    def prompt(self, j: int | None, prompt: tuple[Tensor, Tensor], ref: tuple[Tensor, Tensor]):
        return prompt if self._same(j) else ref

    def strengths(self, live: tuple[int | None, ...], step: int, m: int | None = None) -> Tensor | None:
        """Each row's β ``(len(live)·m,)`` at ``step`` for a guidance-free model (``None`` otherwise):
        the step's β in the blocks on the prompt, 1 in the others (they run at β = 1)."""
        if self.fold is None:
            return None
        beta = self.fold.beta[step]
        per_block = torch.stack([beta if self._same(j) else torch.ones_like(beta) for j in live])
        return per_block.repeat_interleave(self.n if m is None else m)

    def perturbations(self, live: tuple[int | None, ...], m: int | None = None) -> list[tuple[Perturbation, Rows]]:
        """Each perturbed block's span in a batch of the blocks ``live`` of ``m`` rows (default n)."""
        m = self.n if m is None else m
        out, total = [], len(live) * m
        for i, j in enumerate(live):
            source = None if j is None else self.refs[j].source
            if isinstance(source, PerturbedReference):
                out.append((source.perturbation, Rows(i * m, (i + 1) * m, total)))
        return out

    def rows(self, before: tuple[int | None, ...], after: tuple[int | None, ...], keep: Tensor) -> Tensor:
        """The rows to keep of a batch of the blocks ``before`` with ``len(keep)`` rows each: the
        blocks ``after``, and in each the rows ``keep`` marks (:func:`kept_rows`, block by block)."""
        m, j = keep.shape[0], keep.nonzero()[:, 0]
        return torch.cat([before.index(b) * m + j for b in after])

    def restrict(self, logits: Tensor, before: tuple[int | None, ...], after: tuple[int | None, ...]) -> Tensor:
        """The logits ``(len(after)·n, V)`` of the blocks ``after`` from those of ``before``."""
        return torch.cat([logits[before.index(b) * self.n : (before.index(b) + 1) * self.n] for b in after])

    def split(self, logits: Tensor, live: tuple[int | None, ...], step: int) -> list[Tensor | None]:
        """Each reference's logits ``(n, V)`` at ``step`` (``None`` where its block has left, or where a
        guidance-free model folds it: the prompt rows' logits are then guided already)."""
        folded = self._folded(step)
        return [logits[live.index(j) * self.n : (live.index(j) + 1) * self.n] if j in live and j != folded else None
                for j in range(len(self.refs))]  # fmt: skip

    def skipped(self, live: tuple[int | None, ...], step: int) -> int:
        """How many references are not run at ``step`` (their blocks have left), the folded one aside."""
        return sum(1 for j in range(len(self.refs)) if j not in live and j != self._folded(step))

    def _folded(self, step: int) -> int | None:
        return None if self.fold is None else self.fold.folds[step]
