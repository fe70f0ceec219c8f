"""Sampling, stop strings and bad input: both members of every pair emit the same tokens.

The same engine as the greedy tests (small KV cache, chunked prefill), so pairs are preempted and
re-admitted while sampling.
"""

from __future__ import annotations

import pytest
from vllm import SamplingParams

from tests_vllm.tiny import random_prompts
from unified_guidance.autoregressive.vllm import generate
from unified_guidance.autoregressive.vllm.offline import generate_pairs

SAMPLE = SamplingParams(max_tokens=24, temperature=0.9, top_p=0.9, top_k=40, ignore_eos=True)


def test_sampled_pairs_share_every_token_and_seeds_reproduce(llm):
    prompts = random_prompts(20, (2, 40), seed=8)
    params = [SAMPLE.clone() for _ in prompts]
    for i, p in enumerate(params):
        p.seed = 100 + i
    first = generate_pairs(llm, prompts, params, guidance=2.0, negative_prompts=[3, 4])
    for cond, ref in first:
        assert list(cond.outputs[0].token_ids) == list(ref.outputs[0].token_ids)
    again = generate(llm, prompts, params, guidance=2.0, negative_prompts=[3, 4])
    assert [o.outputs[0].token_ids for o in again] == [c.outputs[0].token_ids for c, _ in first]
    greedy = generate(llm, prompts, SamplingParams(max_tokens=24, temperature=0.0, ignore_eos=True), guidance=2.0,
                      negative_prompts=[3, 4])  # fmt: skip
    assert [o.outputs[0].token_ids for o in greedy] != [c.outputs[0].token_ids for c, _ in first]


def test_unseeded_pairs_share_tokens(llm):
    pairs = generate_pairs(llm, random_prompts(12, (2, 30), seed=9), SAMPLE, guidance=1.5)
    assert all(list(c.outputs[0].token_ids) == list(r.outputs[0].token_ids) for c, r in pairs)


def test_stop_string_ends_the_pair(llm):
    """A stop string is seen by the conditional's detokenizer only; its reference is aborted with it."""
    prompts = random_prompts(6, (2, 20), seed=10)
    free = generate(llm, prompts, SamplingParams(max_tokens=24, temperature=0.0, ignore_eos=True), guidance=1.5)
    word = free[0].outputs[0].text.split()[3]
    outs = generate(llm, prompts, SamplingParams(max_tokens=24, temperature=0.0, ignore_eos=True, stop=[word]),
                    guidance=1.5)  # fmt: skip
    assert outs[0].outputs[0].finish_reason == "stop"
    for full, cut in zip(free, outs, strict=True):
        n = len(cut.outputs[0].token_ids)
        assert list(cut.outputs[0].token_ids) == list(full.outputs[0].token_ids)[:n]
    assert not llm.llm_engine.has_unfinished_requests()


@pytest.mark.parametrize(
    ("setting", "value"), [("repetition_penalty", 1.3), ("presence_penalty", 0.5), ("min_tokens", 3), ("n", 2)]
)
def test_settings_the_pair_cannot_share_are_refused(llm, setting, value):
    params = SamplingParams(max_tokens=4, **{setting: value})
    with pytest.raises(ValueError, match=f"sampling_params.{setting}"):
        generate(llm, [[5, 6, 7]], params, guidance=2.0)
