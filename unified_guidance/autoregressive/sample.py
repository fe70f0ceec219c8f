"""``generate``: guided greedy decoding, sampling and beam search for any causal LM.

One forward per new token runs the conditional rows and the reference rows as one
batch of 2B rows with one KV cache (:class:`~.decoding.RowDecoder`); transformers'
``generate(guidance_scale=…)`` runs the reference as a second forward with its own
cache instead. Per step (order matters and is fixed):

1. guided scores from the conditional and reference logits (:func:`~.mixing.guided_scores`, the
   engine's combination): the references' rules → post-processes (the plausibility mask among them);
2. ``logits_processor`` (repetition penalty, bad words …) on the *guided* scores, as in
   transformers, where the guidance processor comes first;
3. temperature → top-k → top-p → min-p (transformers' warpers) when sampling;
4. arg-max, a draw, or the beam update (on the renormalised log-softmax of the scores).

A guidance-free :class:`~.model.CausalLMModel` (``guidance_input=True``) decoded against its ∅ (no
negative prompt) folds the CFG reference into the prompt rows: each guided token is one forward of
B rows fed β_k = 1/s(τ_k) (:class:`~.progress.FoldPlan`), and the guided scores are its logits.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from ..core.numbers import check_int, check_number
from ..guidance.spec import Guidance, as_guidance
from ..guidance.stats import CostMeter, SampleOutput
from ..schedules.scale import Schedule
from .beam import beam_search
from .checks import check_prompts, check_special_tokens, vocab_size
from .decoding import ReferenceBlocks, RowDecoder, stack_prompts
from .mixing import Mixing, guided_scores, with_plausibility
from .model import CausalLMModel, as_model, check_prompt
from .progress import FoldPlan, decode_plan
from .spec import DecodeSpec


def _special_tokens(lm: CausalLMModel, eos_token_id: Any, pad_token_id: int | None) -> tuple[Tensor, int]:
    config = getattr(lm.lm, "generation_config", None)
    eos = eos_token_id if eos_token_id is not None else getattr(config, "eos_token_id", None)
    eos_list = [] if eos is None else [eos] if isinstance(eos, int) else list(eos)
    pad = pad_token_id if pad_token_id is not None else getattr(config, "pad_token_id", None)
    if pad is None:
        pad = eos_list[0] if eos_list else lm.pad_token_id
    return torch.tensor(eos_list, dtype=torch.long, device=lm.device), int(pad)


def reference_prompt(
    lm: CausalLMModel, ids: Tensor, mask: Tensor, negative_input_ids: Any, negative_attention_mask: Any
) -> tuple[Tensor, Tensor]:
    """The reference branch's prompt ``(B, Lr)`` and mask.

    The negative prompt if given (one row serves the whole batch); else the model's null
    token (class-conditional models); else each prompt's last token, as in Sanchez et al.
    and transformers.
    """
    batch = ids.shape[0]
    if negative_input_ids is None:
        if negative_attention_mask is not None:
            raise ValueError("negative_attention_mask: given without negative_input_ids")
        if lm.has_null:
            null = lm.null_condition(batch, device=ids.device)
            null = null[:, None] if isinstance(null, Tensor) and null.ndim == 1 else null
            return check_prompt("null_cond", null)
        return ids[:, -1:], torch.ones_like(ids[:, -1:])
    neg, neg_mask = check_prompt(
        "negative_input_ids", negative_input_ids, negative_attention_mask, mask_name="negative_attention_mask"
    )
    if neg.shape[0] not in (1, batch):
        raise ValueError(
            f"negative_input_ids: expected batch size 1 (shared) or {batch} (that of input_ids), got {neg.shape[0]}"
        )
    return neg.expand(batch, -1).to(ids.device), neg_mask.expand(batch, -1).to(ids.device)


def _processors(logits_processor: Any, do_sample: bool, temperature: float, top_k, top_p, min_p) -> Any:
    from transformers import LogitsProcessorList
    from transformers.generation.logits_process import (
        MinPLogitsWarper,
        TemperatureLogitsWarper,
        TopKLogitsWarper,
        TopPLogitsWarper,
    )

    out = LogitsProcessorList(list(logits_processor or []))
    warpers = temperature != 1.0 or top_k is not None or top_p is not None or min_p is not None
    if warpers and not do_sample:
        raise ValueError("do_sample: temperature/top_k/top_p/min_p act on sampling; pass do_sample=True")
    if temperature != 1.0:
        out.append(TemperatureLogitsWarper(temperature))
    if top_k is not None:
        out.append(TopKLogitsWarper(top_k))
    if top_p is not None:
        out.append(TopPLogitsWarper(top_p))
    if min_p is not None:
        out.append(MinPLogitsWarper(min_p))
    return out


@torch.no_grad()
def generate(
    model: nn.Module,
    input_ids: Tensor,
    *,
    attention_mask: Tensor | None = None,
    negative_input_ids: Tensor | None = None,
    negative_attention_mask: Tensor | None = None,
    guidance: Guidance | Schedule | float = 1.0,
    max_new_tokens: int = 20,
    do_sample: bool = False,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    min_p: float | None = None,
    num_beams: int = 1,
    num_return_sequences: int = 1,
    length_penalty: float = 1.0,
    eos_token_id: int | list[int] | None = None,
    pad_token_id: int | None = None,
    logits_processor: Any = None,
    stopping_criteria: Any = None,
    streamer: Any = None,
    generator: torch.Generator | None = None,
    space: str = "logprobs",
    plausibility: float | None = None,
) -> Tensor:
    """Decode ``max_new_tokens`` tokens under guidance; returns ids ``(B·num_return_sequences, L + T)``.

    ``log p̂ = log p(·|∅) + s(τ)·(log p(·|c) − log p(·|∅))`` per token (Sanchez et al.,
    arXiv 2306.17806), c the prompt ``input_ids`` ``(B, L)`` (left-padded, with
    ``attention_mask``), ∅ the negative prompt ``(B or 1, Lr)`` (default: the null token
    of a class-conditional :class:`CausalLMModel`, else each prompt's last token). A guidance-free
    model against its null token decodes each guided token in one forward of B rows (module docstring).

    Args:
        model: a transformers causal LM or a :class:`CausalLMModel` (whose ``.stats`` count forwards).
        guidance: a scale, a schedule over token progress τ (see :mod:`.progress`) or a
            :class:`~unified_guidance.guidance.Guidance` with a token-space rule.
        space: mix ``"logprobs"`` (default) or raw ``"logits"``.
        plausibility: α of the contrastive-decoding mask (Li et al., arXiv 2210.15097), appended
            to the guidance's post-processes (:class:`~.mixing.PlausibilityMask`).
        num_beams: beam search over the renormalised guided log-probs (early stopping once
            ``num_beams`` hypotheses ended; length normalised by ``new_tokens**length_penalty``).
        eos_token_id, pad_token_id: default to the model's generation config; finished rows
            are padded with ``pad_token_id`` until every row stopped.
        streamer: a transformers streamer (``put`` prompt, then each token; ``end``).
        generator: the random generator for sampling (default: torch's global one).
    """
    lm = as_model(model)
    ids, mask = check_prompt("input_ids", input_ids, attention_mask)
    ids, mask = ids.to(lm.device), mask.to(lm.device)
    check_int("max_new_tokens", max_new_tokens, lo=1)
    check_int("num_beams", num_beams, lo=1)
    check_int("num_return_sequences", num_return_sequences, lo=1)
    _check_combination(do_sample, num_beams, num_return_sequences, streamer, stopping_criteria)
    check_number("length_penalty", length_penalty)
    ref = reference_prompt(lm, ids, mask, negative_input_ids, negative_attention_mask)
    check_prompts(lm, (ids, mask), ref, max_new_tokens)
    eos, pad = _special_tokens(lm, eos_token_id, pad_token_id)
    check_special_tokens(eos, pad, vocab_size(lm))
    g = with_plausibility(as_guidance(guidance), plausibility)
    plan = decode_plan(g, max_new_tokens)
    on_null = negative_input_ids is None and lm.has_null  # the reference prompt is the model's ∅
    spec = DecodeSpec(
        mixing=Mixing(g, space),
        plan=plan,
        fold=FoldPlan.build(g, plan, on_null=on_null) if lm.guidance_input else None,
        processors=_processors(logits_processor, do_sample, temperature, top_k, top_p, min_p),
        stopping=_stopping(stopping_criteria),
        eos=eos,
        pad_token_id=pad,
        do_sample=do_sample,
        generator=generator,
        streamer=streamer,
    )
    if num_beams > 1:
        if len(g.references) > 1 or g.references[0].source is not None:
            raise ValueError("num_beams: beam search takes one reference (∅ or the negative prompt); decode "
                             "perturbed or further references with num_beams=1")  # fmt: skip
        return beam_search(lm, (ids, mask), ref, spec, num_beams, num_return_sequences, length_penalty)
    repeat = num_return_sequences
    rows = [(t.repeat_interleave(repeat, 0)) for t in (ids, mask, *ref)]
    return decode(lm, (rows[0], rows[1]), (rows[2], rows[3]), spec).samples


def _check_combination(do_sample, num_beams, num_return_sequences, streamer, stopping_criteria) -> None:
    if num_beams > 1 and do_sample:
        raise ValueError("do_sample: beam sampling (num_beams > 1 with do_sample=True) is not supported")
    if num_beams > 1 and num_return_sequences > num_beams:
        raise ValueError(f"num_return_sequences: expected at most num_beams = {num_beams}, got {num_return_sequences}")
    if num_beams == 1 and not do_sample and num_return_sequences > 1:
        raise ValueError("num_return_sequences: greedy decoding returns one sequence per prompt; sample or use beams")
    if num_beams > 1 and (streamer is not None or stopping_criteria):
        raise ValueError("num_beams: beam search supports neither streamer nor stopping_criteria; use num_beams=1")


def _stopping(stopping_criteria: Any) -> Any:
    from transformers import StoppingCriteriaList

    return StoppingCriteriaList(list(stopping_criteria or []))


def decode(
    lm: CausalLMModel, prompt: tuple[Tensor, Tensor], ref: tuple[Tensor, Tensor], spec: DecodeSpec
) -> SampleOutput:
    """Greedy decoding or sampling of ``prompt`` ``(n, L)`` against ``ref`` ``(n, Lr)``: the ids
    ``(n, L + T)`` and their cost (``nfe`` = ``steps``: the tokens decoded; a reference block not run
    at a step counts one skipped reference, its rows still going the skipped rows; a reference a
    guidance-free model folds is not a skip: its guidance came with the prompt rows).

    The batch holds a block for the prompt and one per reference still guiding
    (:class:`~.decoding.ReferenceBlocks`), each of the rows still going, ``going``: a block leaves
    the batch and the cache once its scale stays 1, and a row that ended (EOS, a stopping
    criterion) leaves every block, unless ``spec.drop_finished`` is off. The mixing, the
    processors and the pick still see all n rows (an ended row keeps its last logits; its token
    is replaced by padding), so every token and the random stream of sampling are those of the
    loop that keeps every row.
    """
    ids, n, meter = prompt[0], prompt[0].shape[0], CostMeter([lm])
    steps, done, off_refs, off_rows = len(spec.plan), 0, 0, 0  # tokens done; references, rows not run
    plan = spec.plan
    blocks = ReferenceBlocks(spec.mixing.guidance.references, plan, n, spec.fold)
    live = blocks.live(0)
    decoder = RowDecoder(lm, *stack_prompts([blocks.prompt(j, prompt, ref) for j in live], lm.pad_token_id))
    logits = decoder.prefill(blocks.perturbations(live), blocks.strengths(live, 0))  # (len(live)·n, V)
    states: list = [None] * len(spec.mixing.guidance.references)
    going = torch.arange(n, device=ids.device)
    unfinished = torch.ones(n, dtype=torch.bool, device=ids.device)
    tokens = ids[:, -1]
    if spec.streamer is not None:
        spec.streamer.put(ids.cpu())
    for k in range(steps):
        if k > 0:
            now = blocks.live(k)
            keep = unfinished[going] if spec.drop_finished else torch.ones_like(going, dtype=torch.bool)
            if now != live or not bool(keep.all()):  # a reference stops guiding, or rows ended
                decoder.select(blocks.rows(live, now, keep))
                logits, live, going = blocks.restrict(logits, live, now), now, going[keep]
            rows = (torch.arange(len(live), device=ids.device)[:, None] * n + going).reshape(-1)  # b·n + i
            m = len(going)
            step = decoder.step(
                tokens[going].repeat(len(live)), blocks.perturbations(live, m), blocks.strengths(live, k, m)
            )
            logits = logits.index_copy(0, rows, step)
        refs, off = blocks.split(logits, live, k), blocks.skipped(live, k)
        done, off_refs, off_rows = done + 1, off_refs + off, off_rows + off * len(going)
        scales = list(plan.scales[k].to(logits))
        scores, states = guided_scores(spec.mixing, logits[:n], refs, scales, plan.taus[k], states, plan[k])
        scores = spec.processors(ids, scores)
        tokens = _pick(scores, spec.do_sample, spec.generator)
        tokens = torch.where(unfinished, tokens, torch.full_like(tokens, spec.pad_token_id))
        ids = torch.cat([ids, tokens[:, None]], dim=1)
        if spec.streamer is not None:
            spec.streamer.put(tokens.cpu())
        unfinished &= ~torch.isin(tokens, spec.eos) & ~spec.stopping(ids, scores).to(unfinished.device)
        if not bool(unfinished.any()):
            break
    if spec.streamer is not None:
        spec.streamer.end()
    return SampleOutput(ids, meter.stats(nfe=done, steps=done, skipped_reference=off_refs, skipped_rows=off_rows))


def _pick(scores: Tensor, do_sample: bool, generator: torch.Generator | None) -> Tensor:
    if not do_sample:
        return scores.argmax(dim=-1)
    probs = torch.softmax(scores, dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(1)
