"""Beam search and scale schedules against slow stateless references (full forwards, no cache)."""

import pytest
import torch
from ar_models import PAD, VOCAB, prompts
from transformers import LogitsProcessorList

from unified_guidance.autoregressive import CausalLMModel, GuidanceLogitsProcessor, anneal, generate, linear_ramp
from unified_guidance.autoregressive.progress import decode_plan
from unified_guidance.guidance import Guidance
from unified_guidance.schedules import Interval, Linear

NO_EOS = {"eos_token_id": [], "pad_token_id": PAD}


@torch.no_grad()
def guided_logprobs(model: CausalLMModel, tokens: list[int], prompt, neg, scale: float, renormalise=True):
    """log_softmax(u + s(c − u)) over log-softmaxed full forwards of prompt/neg ++ tokens."""
    x = torch.tensor([tokens], dtype=torch.long).reshape(1, -1)
    c = torch.log_softmax(model(x, 0.0, prompt), -1)[0]
    u = torch.log_softmax(model(x, 0.0, neg), -1)[0]
    guided = u + scale * (c - u)
    return torch.log_softmax(guided, -1) if renormalise else guided


def slow_beam_search(model, prompt, neg, scale, beams, steps, renormalise=True) -> list[list[int]]:
    running = [(0.0, [])]
    for _ in range(steps):
        candidates = []
        for score, tokens in running:
            logp = guided_logprobs(model, tokens, prompt, neg, scale, renormalise)
            candidates += [(score + float(logp[v]), [*tokens, v]) for v in range(VOCAB)]
        running = sorted(candidates, key=lambda c: -c[0])[:beams]
    return [tokens for _, tokens in running]


def slow_greedy(model, prompt, neg, scales) -> list[int]:
    tokens: list[int] = []
    for s in scales:
        tokens.append(int(guided_logprobs(model, tokens, prompt, neg, float(s)).argmax()))
    return tokens


def test_guided_beam_search_equals_a_slow_stateless_reference(llama):
    model = CausalLMModel(llama)
    ids, neg = prompts(2, 4, seed=1), prompts(2, 3, seed=2)
    out = generate(
        model,
        ids,
        negative_input_ids=neg,
        guidance=2.5,
        num_beams=3,
        num_return_sequences=3,
        max_new_tokens=4,
        **NO_EOS,
    )
    for b in range(2):
        expected = slow_beam_search(model, ids[b : b + 1], neg[b : b + 1], 2.5, beams=3, steps=4)
        assert out[3 * b : 3 * b + 3, 4:].tolist() == expected


def test_processor_keeps_its_reference_cache_with_transformers_beams(gpt2):
    # transformers' beam search feeds processors un-renormalised log-probs; the processor finds
    # each beam's parent from the histories and reorders its own reference cache.
    model = CausalLMModel(gpt2)
    ids, neg = prompts(1, 4, seed=15), prompts(1, 3, seed=16)
    proc = GuidanceLogitsProcessor(gpt2, 2.5, negative_input_ids=neg)
    gpt2.generation_config.eos_token_id = None
    try:
        out = gpt2.generate(
            ids,
            logits_processor=LogitsProcessorList([proc]),
            num_beams=3,
            num_return_sequences=3,
            max_new_tokens=4,
            pad_token_id=PAD,
            length_penalty=0.0,
        )
    finally:
        gpt2.generation_config.eos_token_id = 1
    assert out[:, 4:].tolist() == slow_beam_search(model, ids, neg, 2.5, 3, 4, renormalise=False)


def test_beam_search_at_scale_one_equals_transformers_beam_search(gpt2):
    ids = prompts(2, 5, seed=3)
    gpt2.generation_config.eos_token_id = None
    try:
        builtin = gpt2.generate(
            ids,
            num_beams=3,
            num_return_sequences=3,
            max_new_tokens=5,
            pad_token_id=PAD,
            length_penalty=0.0,
            early_stopping=True,
        )
    finally:
        gpt2.generation_config.eos_token_id = 1
    ours = generate(gpt2, ids, guidance=1.0, num_beams=3, num_return_sequences=3, max_new_tokens=5, **NO_EOS)
    assert torch.equal(ours, builtin)


def test_token_progress_and_when_the_reference_rows_leave():
    plan = decode_plan(Guidance(scale=Interval(3.0, lo=0.0, hi=0.5)), 5)
    torch.testing.assert_close(plan.taus, torch.tensor([0.0, 0.25, 0.5, 0.75, 1.0], dtype=torch.float64))
    assert plan.scales[:, 0].tolist() == [3.0, 3.0, 3.0, 1.0, 1.0]
    assert plan.unused_from(0) == 3
    assert decode_plan(Guidance(scale=Interval(3.0, lo=0.5, hi=1.0)), 5).unused_from(0) == 5
    assert decode_plan(Guidance(scale=Linear(3.0, 1.0)), 5).unused_from(0) == 4  # the ramp reaches 1 at τ = 1 only
    assert decode_plan(Guidance(scale=Linear(1.0, 1.0)), 5).unused_from(0) == 0  # never guided: no reference rows


def test_paper_schedules_over_token_progress():
    tau = torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64)
    assert linear_ramp(4.0)(tau).tolist() == [1.0, 2.5, 4.0]  # VAR: grows from 1 to s
    assert anneal(10.0, 1.0)(tau).tolist() == [10.0, 5.5, 1.0]  # MAGNeT: decays from high to low


@pytest.mark.parametrize(
    "schedule", [Interval(3.0, lo=0.0, hi=0.4), Interval(3.0, lo=0.5, hi=1.0), linear_ramp(3.0), anneal(4.0, 1.0)]
)
def test_scheduled_guidance_equals_stateless_per_token_scales(gpt2, schedule):
    model = CausalLMModel(gpt2)
    ids, neg = prompts(2, 4, seed=5), prompts(2, 2, seed=6)
    steps = 6
    out = generate(model, ids, negative_input_ids=neg, guidance=schedule, max_new_tokens=steps, **NO_EOS)
    scales = decode_plan(Guidance(scale=schedule), steps).scales[:, 0]
    for b in range(2):
        assert out[b, 4:].tolist() == slow_greedy(model, ids[b : b + 1], neg[b : b + 1], scales)


def test_reference_rows_leave_batch_and_cache_once_the_scale_stays_one(gpt2):
    model = CausalLMModel(gpt2)
    generate(model, prompts(3, 4), guidance=Interval(2.0, lo=0.0, hi=0.5), max_new_tokens=5, **NO_EOS)
    # τ = 0, .25, .5 guided over 6 rows; τ = .75, 1 over the 3 conditional rows only.
    assert (model.stats.calls, model.stats.rows) == (5, 3 * 6 + 2 * 3)
