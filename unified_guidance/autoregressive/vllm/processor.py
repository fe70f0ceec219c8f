"""The pair's logits processor: mixes a pair's two rows with the library's combine and makes both emit one token.

A vLLM V1 batch-level ``LogitsProcessor`` (``LLM(logits_processors=[PairLogitsProcessor])``). It follows
the persistent batch through ``update_state`` and, each step, finds the pairs whose two rows are both
in the batch at the same token k. For those it

1. forms the guided scores with :func:`combine` — the library's combination, called from this one
   place (:func:`~unified_guidance.autoregressive.mixing.guided_scores`: the rule in log-prob or logit
   space, post-processes, the plausibility mask) at the scale s(τ_k), τ_k = k/(N−1);
2. picks the pair's token from the guided scores with the request's own temperature, top-k and top-p
   (vLLM's batched top-k/top-p op), greedy at temperature 0, else a Gumbel-max draw from a stream
   seeded by (seed, k) — so the draw does not depend on the batch, on retries or on preemptions;
3. writes that token as a one-hot row (0 there, −inf elsewhere) into *both* rows, so vLLM's sampler,
   whatever its settings, emits the same token for the conditional and the reference request.

Rows of a pair that are not both sampling at the same k are left alone: the scheduler
(:mod:`.scheduler`) never keeps such a sample. Unguided requests are not touched.
"""

from __future__ import annotations

import pickle
from functools import lru_cache
from typing import Any

import torch
from torch import Tensor
from vllm.v1.sample.logits_processor import BatchUpdate, LogitsProcessor
from vllm.v1.sample.logits_processor.builtin import process_dict_updates
from vllm.v1.sample.ops.topk_topp_sampler import apply_top_k_top_p

from ...guidance.plan import Plan
from ..mixing import Mixing, guided_scores
from ..progress import decode_plan
from .pairs import COND, REF, PairTag, check_pair_params, pair_tag

_GREEDY_EPS = 1e-5  # vLLM's own: a temperature below it means greedy


def combine(mixing: Mixing, cond: Tensor, ref: Tensor, scale: Tensor, tau: Tensor) -> Tensor:
    """Guided scores ``(R, V)`` from the conditional and reference logits ``(R, V)`` at per-row scales ``(R,)``.

    The single call into the library's combination; rule state is not carried between steps
    (a row's place in vLLM's batch changes from step to step).
    """
    scores, _ = guided_scores(mixing, cond, [ref], [scale], tau, [None])
    return scores


@lru_cache(maxsize=64)
def _plan(blob: bytes, steps: int) -> tuple[Mixing, Plan]:
    mixing = pickle.loads(blob)
    return mixing, decode_plan(mixing.guidance, steps)


class _Row:
    __slots__ = ("out", "params", "tag")

    def __init__(self, tag: PairTag, params: Any, out: list[int]) -> None:
        self.tag, self.params, self.out = tag, params, out


class PairLogitsProcessor(LogitsProcessor):
    """Guided pairs in vLLM's batch: see the module docstring."""

    @classmethod
    def validate_params(cls, sampling_params: Any) -> None:
        if pair_tag(sampling_params) is not None:
            check_pair_params(sampling_params)

    def __init__(self, vllm_config: Any, device: torch.device, is_pin_memory: bool) -> None:
        self.rows: dict[int, _Row] = {}

    def is_argmax_invariant(self) -> bool:
        return False  # it decides the token, greedy included

    def update_state(self, batch_update: BatchUpdate | None) -> None:
        def new_state(params: Any, _prompt: Any, out: list[int]) -> _Row | None:
            tag = pair_tag(params)
            return None if tag is None else _Row(tag, params, out)

        process_dict_updates(self.rows, batch_update, new_state)

    def _pairs(self) -> list[tuple[int, int, _Row]]:
        """(conditional index, reference index, conditional row) of the pairs sampling together this step."""
        members: dict[str, dict[int, int]] = {}
        for index, row in self.rows.items():
            members.setdefault(row.tag.pair, {})[row.tag.role] = index
        out = []
        for both in members.values():
            if len(both) == 2:
                c, r = self.rows[both[COND]], self.rows[both[REF]]
                if len(c.out) == len(r.out) < c.tag.until:
                    out.append((both[COND], both[REF], c))
        return out

    def apply(self, logits: Tensor) -> Tensor:
        pairs = self._pairs()
        if not pairs:
            return logits
        groups: dict[tuple[bytes, int], list[tuple[int, int, _Row]]] = {}
        for p in pairs:
            groups.setdefault((p[2].tag.mixing, p[2].tag.steps), []).append(p)
        for (blob, steps), group in groups.items():
            mixing, plan = _plan(blob, steps)
            ci = torch.tensor([g[0] for g in group], device=logits.device)
            ri = torch.tensor([g[1] for g in group], device=logits.device)
            ks = torch.tensor([len(g[2].out) for g in group])
            scale = plan.scales[ks, 0].to(logits)
            scores = combine(mixing, logits[ci], logits[ri], scale, plan.taus[ks].to(logits)[:, None])
            tokens = _pick(scores.float(), [g[2] for g in group])
            onehot = torch.full_like(scores, float("-inf"), dtype=logits.dtype)
            onehot[torch.arange(len(group)), tokens] = 0.0
            logits[ci] = onehot
            logits[ri] = onehot
        return logits


def _pick(scores: Tensor, rows: list[_Row]) -> Tensor:
    """The pair's token per row: arg-max at temperature 0, else a draw after temperature, top-k, top-p."""
    tokens = scores.argmax(dim=-1)
    sampled = [i for i, row in enumerate(rows) if row.params.temperature >= _GREEDY_EPS]
    if not sampled:
        return tokens
    sub = scores[sampled] / torch.tensor([rows[i].params.temperature for i in sampled])[:, None].to(scores)
    top_k = [rows[i].params.top_k for i in sampled]
    top_p = [rows[i].params.top_p for i in sampled]
    k = None if all(v in (0, -1) for v in top_k) else _as_k(top_k, scores.shape[-1]).to(sub.device)
    p = None if all(v >= 1.0 for v in top_p) else torch.tensor(top_p, dtype=torch.float32, device=sub.device)
    sub = apply_top_k_top_p(sub, k, p)
    probs = torch.softmax(sub, dim=-1)
    for j, i in enumerate(sampled):
        stream = torch.Generator().manual_seed((rows[i].tag.seed * 1_000_003 + len(rows[i].out)) % (2**63))
        noise = torch.empty(probs.shape[-1], dtype=torch.float64).exponential_(generator=stream)
        tokens[i] = int((probs[j].double().cpu() / noise).argmax())
    return tokens


def _as_k(top_k: list[int], vocab: int) -> Tensor:
    return torch.tensor([vocab if v in (0, -1) else v for v in top_k], dtype=torch.long)
