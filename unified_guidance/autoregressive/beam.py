"""Beam search over guided next-token distributions, the reference cache moving with the beams.

Each step, every beam's guided scores are renormalised (``log_softmax``: the guided
line ``log p(∅) + s(log p(c) − log p(∅))`` is not a normalised distribution), the
beam scores add up these log-probabilities, and the best ``K`` continuations of the
top ``K·(1 + #eos)`` candidates go on. Every surviving beam's parent is gathered in
*both* halves of the batch, so the reference rows' cache follows their beams —
transformers' built-in guidance keeps its reference cache in the old order.
A hypothesis ending in EOS is kept with score ``Σ log p / new_tokens**length_penalty``;
a batch item stops once it has ``K`` of them (early stopping). A guidance-free model folding
its reference (:class:`~.progress.FoldPlan`) runs the beams' rows alone, fed β of the step.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .decoding import RowDecoder, stack_prompts
from .mixing import guided_scores
from .model import CausalLMModel
from .spec import DecodeSpec


def beam_search(
    lm: CausalLMModel,
    prompt: tuple[Tensor, Tensor],
    ref: tuple[Tensor, Tensor],
    spec: DecodeSpec,
    num_beams: int,
    num_return_sequences: int = 1,
    length_penalty: float = 1.0,
) -> Tensor:
    """Guided beam search of prompts ``(B, L)`` against ``ref`` ``(B, Lr)``; ids ``(B·num_return_sequences, L + T)``."""
    batch, k_beams = prompt[0].shape[0], num_beams
    prompt = (prompt[0].repeat_interleave(k_beams, 0), prompt[1].repeat_interleave(k_beams, 0))
    ref = (ref[0].repeat_interleave(k_beams, 0), ref[1].repeat_interleave(k_beams, 0))
    ids, n = prompt[0], batch * k_beams
    fold = spec.fold
    until = spec.plan.unused_from(0) if fold is None else fold.unused_from(spec.plan, 0)  # reference rows leave
    decoder = RowDecoder(lm, *stack_prompts([prompt, ref] if until > 0 else [prompt], lm.pad_token_id))
    logits = decoder.prefill(beta=_strengths(spec, 0, n, decoder.rows))
    beam_scores = torch.full((batch, k_beams), float("-inf"), dtype=logits.dtype, device=ids.device)
    beam_scores[:, 0] = 0.0  # all beams start equal: keep one so the first step does not repeat it
    hyps: list[list[tuple[float, Tensor]]] = [[] for _ in range(batch)]
    steps = len(spec.plan)
    for k in range(steps):
        if k > 0:
            if decoder.rows > n and k >= until:
                decoder.select(torch.arange(n))
            logits = decoder.step(ids[:, -1].repeat(decoder.rows // n), beta=_strengths(spec, k, n, decoder.rows))
        reference = logits[n:] if decoder.rows > n else None
        scale = spec.plan.scales[k, 0].to(logits)
        scores, states = guided_scores(spec.mixing, logits[:n], [reference], [scale], spec.plan.taus[k], [None],
                                       spec.plan[k])  # fmt: skip
        if states[0] is not None:
            raise ValueError("guidance: rules with state (APG momentum) are not supported under beam search")
        logp = torch.log_softmax(spec.processors(ids, scores), dim=-1)
        parent, tokens, beam_scores = _advance(ids, logp, beam_scores, spec.eos, hyps, k + 1, length_penalty)
        ids = torch.cat([ids[parent], tokens[:, None]], dim=1)
        decoder.select(torch.cat([parent, parent + n]) if decoder.rows > n else parent)
        if all(len(h) >= k_beams for h in hyps):
            break
    for b in range(batch):
        if len(hyps[b]) < k_beams:
            for j in range(k_beams):
                _add(
                    hyps[b],
                    float(beam_scores[b, j]) / (ids.shape[1] - prompt[0].shape[1]) ** length_penalty,
                    ids[b * k_beams + j],
                    k_beams,
                )
    return _pad_best(hyps, num_return_sequences, spec.pad_token_id)


def _strengths(spec: DecodeSpec, step: int, n: int, rows: int) -> Tensor | None:
    """β of the rows ``(rows,)`` at ``step``: the step's for the n beam rows, 1 for reference rows."""
    if spec.fold is None:
        return None
    beta = torch.ones(rows, dtype=spec.fold.beta.dtype)
    beta[:n] = spec.fold.beta[step]
    return beta


def _advance(
    ids: Tensor,
    logp: Tensor,
    beam_scores: Tensor,
    eos: Tensor,
    hyps: list[list[tuple[float, Tensor]]],
    new_tokens: int,
    length_penalty: float,
) -> tuple[Tensor, Tensor, Tensor]:
    """One beam step: record finished hypotheses, return each new beam's flat parent row,
    its token ``(B·K,)`` and the new beam scores ``(B, K)``."""
    batch, k_beams = beam_scores.shape
    vocab = logp.shape[-1]
    cand = (beam_scores.reshape(-1, 1) + logp).reshape(batch, k_beams * vocab)
    width = min(k_beams * (1 + eos.numel()), cand.shape[1])
    values, index = cand.topk(width, dim=1)
    parent, tokens = index // vocab, index % vocab
    is_eos = torch.isin(tokens, eos)
    for b, j in is_eos.nonzero().tolist():
        if j < k_beams and len(hyps[b]) < k_beams and bool(torch.isfinite(values[b, j])):
            row = ids[b * k_beams + int(parent[b, j])]
            seq = torch.cat([row, tokens[b, j : j + 1]])
            _add(hyps[b], float(values[b, j]) / new_tokens**length_penalty, seq, k_beams)
    running = values.masked_fill(is_eos, float("-inf")).topk(k_beams, dim=1)
    keep = running.indices
    flat_parent = (parent.gather(1, keep) + torch.arange(batch, device=ids.device)[:, None] * k_beams).reshape(-1)
    return flat_parent, tokens.gather(1, keep).reshape(-1), running.values


def _add(hyps: list[tuple[float, Tensor]], score: float, seq: Tensor, k_beams: int) -> None:
    hyps.append((score, seq))
    hyps.sort(key=lambda h: -h[0])
    del hyps[k_beams:]


def _pad_best(hyps: list[list[tuple[float, Tensor]]], count: int, pad_token_id: int) -> Tensor:
    best = [seq for h in hyps for _, seq in h[:count]]
    length = max(seq.shape[0] for seq in best)
    out = best[0].new_full((len(best), length), pad_token_id)
    for i, seq in enumerate(best):
        out[i, : seq.shape[0]] = seq
    return out
