"""Rows of a batch decoded together with one KV cache: the cached twin of ``CausalLMModel.predict``.

Guidance puts the conditional rows and the reference rows into one batch
(``[cond_0 … cond_{n−1}, ref_0 … ref_{n−1}, …]``, a block of n rows per reference), each
row left-padded with its own attention mask and position ids, so one forward and one cache
serve every branch; a perturbed reference's block runs under its perturbation (its rows only).
Beam search reorders the rows (:meth:`RowDecoder.select`); once the
guidance scale stays 1 the reference rows leave the batch and the cache.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from ..compat import transformers as hf
from ..guidance.spec import PerturbedReference, Reference
from ..perturb import Perturbation, Rows, perturbed
from ..perturb.hooks import Selections
from .model import CausalLMModel, left_pad
from .progress import ScalePlan

Perturbations = Sequence[tuple[Perturbation, Rows]]


def stack_prompts(prompts: list[tuple[Tensor, Tensor]], pad_token_id: int) -> tuple[Tensor, Tensor]:
    """Concatenate left-padded prompts ``(Rᵢ, Lᵢ)`` of different lengths along the batch,
    left-padding each to the longest. Returns ids and mask ``(ΣRᵢ, max Lᵢ)``."""
    length = max(ids.shape[1] for ids, _ in prompts)
    padded = [left_pad(ids, mask, length, pad_token_id) for ids, mask in prompts]
    return torch.cat([p[0] for p in padded]), torch.cat([p[1] for p in padded])


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

        ``perturbations``: ``(perturbation, rows)`` acting on some rows (a perturbed reference)."""
        with perturbed(self.model, perturbations, self._selected) if perturbations else contextlib.nullcontext():
            logits, cache = self.model.step(self._prompt, self.mask, self.cache)
        if cache is None:
            raise ValueError(f"model: expected {type(self.model.lm).__name__} to return a KV cache, got None")
        self.cache = cache
        return logits

    def step(self, tokens: Tensor, perturbations: Perturbations = ()) -> Tensor:
        """Append one token per row ``(R,)``; the logits of the next one ``(R, V)``."""
        if tokens.shape != (self.rows,):
            raise ValueError(f"tokens: expected shape ({self.rows},), got {tuple(tokens.shape)}")
        self.mask = torch.cat([self.mask, self.mask.new_ones((self.rows, 1))], dim=1)
        with perturbed(self.model, perturbations, self._selected) if perturbations else contextlib.nullcontext():
            logits, self.cache = self.model.step(tokens[:, None], self.mask, self.cache)
        return logits

    def select(self, index: Tensor) -> None:
        """Keep (and reorder, repeat) rows: row ``i`` becomes old row ``index[i]``.

        Beam search calls this with each beam's parent; dropping the reference rows
        calls it with ``arange(n)``.
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

    def __init__(self, references: Sequence[Reference], plans: Sequence[ScalePlan], n: int) -> None:
        self.refs, self.plans, self.n = references, plans, n

    def live(self, step: int) -> tuple[int | None, ...]:
        return (None, *(j for j, plan in enumerate(self.plans) if plan.guided(step)))

    def prompt(self, j: int | None, prompt: tuple[Tensor, Tensor], ref: tuple[Tensor, Tensor]):
        source = None if j is None else self.refs[j].source
        same = j is None or (isinstance(source, PerturbedReference) and source.condition == "same")
        return prompt if same else ref

    def perturbations(self, live: tuple[int | None, ...]) -> list[tuple[Perturbation, Rows]]:
        out, total = [], len(live) * self.n
        for i, j in enumerate(live):
            source = None if j is None else self.refs[j].source
            if isinstance(source, PerturbedReference):
                out.append((source.perturbation, Rows(i * self.n, (i + 1) * self.n, total)))
        return out

    def rows(self, before: tuple[int | None, ...], after: tuple[int | None, ...]) -> Tensor:
        """The rows of the blocks ``after`` in a batch laid out as ``before``."""
        return torch.cat([torch.arange(self.n) + before.index(j) * self.n for j in after])

    def split(self, logits: Tensor, live: tuple[int | None, ...]) -> list[Tensor | None]:
        """Each reference's logits ``(n, V)`` (``None`` where its block has left)."""
        return [logits[live.index(j) * self.n : (live.index(j) + 1) * self.n] if j in live else None
                for j in range(len(self.plans))]  # fmt: skip
