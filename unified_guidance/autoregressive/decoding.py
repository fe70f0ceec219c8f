"""Rows of a batch decoded together with one KV cache: the cached twin of ``CausalLMModel.predict``.

Guidance puts the conditional rows and the reference rows into one batch
(``[cond_0 … cond_{n−1}, ref_0 … ref_{n−1}]``), each row left-padded with its own
attention mask and position ids, so one forward over 2n rows and one cache serve
both branches. Beam search reorders the rows (:meth:`RowDecoder.select`); once the
guidance scale stays 1 the reference rows leave the batch and the cache, and rows that
ended leave with their reference rows (:func:`kept_rows`). Identical prompt rows (one
prompt sampled several times, a shared negative prompt) are run once by the prefill.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ..compat import transformers as hf
from .model import CausalLMModel, left_pad


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
        self._prompt = ids

    @property
    def rows(self) -> int:
        return self.mask.shape[0]

    def prefill(self) -> Tensor:
        """Run the prompts; the logits of each row's first new token ``(R, V)``.

        Identical rows run once (:func:`distinct_rows`; the model counts the rows it ran); their
        cache rows and logits are then repeated."""
        first, inverse = distinct_rows(self._prompt, self.mask)
        repeated = first.shape[0] < self.rows
        ids, mask = (self._prompt[first], self.mask[first]) if repeated else (self._prompt, self.mask)
        logits, cache = self.model.step(ids, mask, self.cache)
        if cache is None:
            raise ValueError(f"model: expected {type(self.model.lm).__name__} to return a KV cache, got None")
        self.cache = cache
        if repeated:
            hf.reorder_cache(self.cache, inverse)
            logits = logits[inverse]
        return logits

    def step(self, tokens: Tensor) -> Tensor:
        """Append one token per row ``(R,)``; the logits of the next one ``(R, V)``."""
        if tokens.shape != (self.rows,):
            raise ValueError(f"tokens: expected shape ({self.rows},), got {tuple(tokens.shape)}")
        self.mask = torch.cat([self.mask, self.mask.new_ones((self.rows, 1))], dim=1)
        logits, self.cache = self.model.step(tokens[:, None], self.mask, self.cache)
        return logits

    def select(self, index: Tensor) -> None:
        """Keep (and reorder, repeat) rows: row ``i`` becomes old row ``index[i]``.

        Beam search calls this with each beam's parent; dropping the reference rows
        or ended rows calls it with :func:`kept_rows`.
        """
        index = index.to(self.mask.device)
        self.mask = self.mask[index]
        if hf.cache_length(self.cache) > 0:
            hf.reorder_cache(self.cache, index)
