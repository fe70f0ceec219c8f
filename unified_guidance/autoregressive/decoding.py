"""Rows of a batch decoded together with one KV cache: the cached twin of ``CausalLMModel.predict``.

Guidance puts the conditional rows and the reference rows into one batch
(``[cond_0 … cond_{n−1}, ref_0 … ref_{n−1}, …]``, a block of n rows per reference), each
row left-padded with its own attention mask and position ids, so one forward and one cache
serve every branch; a perturbed reference's block runs under its perturbation (its rows only).
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


def distinct_rows(ids: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """The first row of each group of identical rows (same ids and mask), in order, and each row's
    group: ``rows[inverse]`` are the rows again. ``(R, L), (R, L) -> (U,), (R,)``."""
    rows = torch.cat([ids, mask.to(ids.dtype)], dim=1)
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

    def prefill(self, perturbations: Perturbations = ()) -> Tensor:
        """Run the prompts; the logits of each row's first new token ``(R, V)``.

        ``perturbations``: ``(perturbation, rows)`` acting on some rows (a perturbed reference).
        Without them, identical rows run once (:func:`distinct_rows`; the model counts the rows
        it ran); their cache rows and logits are then repeated."""
        first, inverse = distinct_rows(self._prompt, self.mask)
        repeated = first.shape[0] < self.rows and not perturbations
        ids, mask = (self._prompt[first], self.mask[first]) if repeated else (self._prompt, self.mask)
        logits, cache = self._step(ids, perturbations, mask)
        if cache is None:
            raise ValueError(f"model: expected {type(self.model.lm).__name__} to return a KV cache, got None")
        self.cache = cache
        if repeated:
            hf.reorder_cache(self.cache, inverse)
            logits = logits[inverse]
        return logits

    def step(self, tokens: Tensor, perturbations: Perturbations = ()) -> Tensor:
        """Append one token per row ``(R,)``; the logits of the next one ``(R, V)``."""
        if tokens.shape != (self.rows,):
            raise ValueError(f"tokens: expected shape ({self.rows},), got {tuple(tokens.shape)}")
        self.mask = torch.cat([self.mask, self.mask.new_ones((self.rows, 1))], dim=1)
        logits, self.cache = self._step(tokens[:, None], perturbations, self.mask)
        return logits

    def _step(self, ids: Tensor, perturbations: Perturbations, mask: Tensor) -> tuple[Tensor, Any]:
        if not perturbations:
            return self.model.step(ids, mask, self.cache)
        return self._perturbed_step(ids, perturbations, mask)

    @torch.compiler.disable  # hooks installed per call cannot be traced: this step runs eagerly
    def _perturbed_step(self, ids: Tensor, perturbations: Perturbations, mask: Tensor) -> tuple[Tensor, Any]:
        with perturbed(self.model, perturbations, self._selected):
            return self.model.step(ids, mask, self.cache)

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

    def __init__(self, references: Sequence[Reference], plan: Plan, n: int) -> None:
        self.refs, self.n = references, n
        self.until = [plan.unused_from(j) for j in range(len(references))]  # block j leaves at this step

    def live(self, step: int) -> tuple[int | None, ...]:
        return (None, *(j for j, until in enumerate(self.until) if step < until))

    def prompt(self, j: int | None, prompt: tuple[Tensor, Tensor], ref: tuple[Tensor, Tensor]):
        source = None if j is None else self.refs[j].source
        same = j is None or (isinstance(source, PerturbedReference) and source.condition == "same")
        return prompt if same else ref

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

    def split(self, logits: Tensor, live: tuple[int | None, ...]) -> list[Tensor | None]:
        """Each reference's logits ``(n, V)`` (``None`` where its block has left)."""
        return [logits[live.index(j) * self.n : (live.index(j) + 1) * self.n] if j in live else None
                for j in range(len(self.refs))]  # fmt: skip
