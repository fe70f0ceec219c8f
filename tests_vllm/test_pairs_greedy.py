"""Greedy guided tokens through vLLM equal the library's decoder and transformers' own CFG, token for token.

Oracles: :func:`unified_guidance.autoregressive.generate` and ``LlamaForCausalLM.generate(guidance_scale=…)``
on the same float32 weights, one prompt at a time; vLLM runs two dozen pairs of prompt lengths 2–40
at once in a KV cache that forces preemption and a token budget that forces chunked prefill.
"""

from __future__ import annotations

import pytest
import torch
from vllm import SamplingParams

import unified_guidance as ug
from tests_vllm.conftest import preemptions
from tests_vllm.tiny import EOS, random_prompts
from unified_guidance.autoregressive import anneal, linear_ramp
from unified_guidance.autoregressive.vllm import generate
from unified_guidance.autoregressive.vllm.offline import generate_pairs

TOKENS = 24
GREEDY = SamplingParams(max_tokens=TOKENS, temperature=0.0, ignore_eos=True)


def ours(hf_model, prompt, **kwargs) -> list[int]:
    ids = ug.autoregressive.generate(hf_model, torch.tensor([prompt]), max_new_tokens=TOKENS, eos_token_id=[], **kwargs)
    return ids[0, len(prompt) :].tolist()


def test_greedy_pairs_equal_library_decoder_under_preemption(llm, hf_model):
    prompts, negatives = random_prompts(24, (2, 40), seed=3), random_prompts(24, (1, 12), seed=4)
    before = preemptions(llm)
    pairs = generate_pairs(llm, prompts, GREEDY, guidance=1.5, negative_prompts=negatives)
    assert preemptions(llm) > before  # the KV cache was too small for all pairs at once
    for prompt, neg, (cond, ref) in zip(prompts, negatives, pairs, strict=True):
        expected = ours(hf_model, prompt, negative_input_ids=torch.tensor([neg]), guidance=1.5)
        assert list(cond.outputs[0].token_ids) == expected
        assert list(ref.outputs[0].token_ids) == expected  # the pair emitted one token per step


def until_eos(tokens: list[int]) -> list[int]:
    return tokens[: tokens.index(EOS) + 1] if EOS in tokens else tokens


def test_greedy_default_reference_equals_transformers_guidance_scale(llm, hf_model):
    """Both stop at the end-of-sequence token; transformers pads after it."""
    prompts = random_prompts(16, (2, 30), seed=5)
    outs = generate(llm, prompts, SamplingParams(max_tokens=TOKENS, temperature=0.0), guidance=2.0)
    stopped = 0
    for prompt, out in zip(prompts, outs, strict=True):
        builtin = hf_model.generate(
            torch.tensor([prompt]), guidance_scale=2.0, max_new_tokens=TOKENS, do_sample=False, pad_token_id=1
        )
        assert list(out.outputs[0].token_ids) == until_eos(builtin[0, len(prompt) :].tolist())
        stopped += out.outputs[0].finish_reason == "stop"
    assert stopped > 0  # some pairs ended on the end-of-sequence token, both members at once


@pytest.mark.parametrize(
    ("guidance", "extra"),
    [(linear_ramp(2.5), {}), (anneal(3.0), {}), (1.8, {"space": "logits"}), (2.0, {"plausibility": 0.1})],
    ids=["ramp", "anneal-ends-guidance", "logit-space", "plausibility"],
)
def test_schedules_and_logit_rules_equal_library_decoder(llm, hf_model, guidance, extra):
    prompts = random_prompts(10, (2, 36), seed=6)
    outs = generate(llm, prompts, GREEDY, guidance=guidance, **extra)
    for prompt, out in zip(prompts, outs, strict=True):
        assert list(out.outputs[0].token_ids) == ours(hf_model, prompt, guidance=guidance, **extra)


def test_scale_one_runs_plain_requests_equal_unguided_vllm(llm):
    prompts = random_prompts(6, (2, 20), seed=7)
    guided = generate(llm, prompts, GREEDY, guidance=1.0)
    plain = llm.generate([{"prompt_token_ids": p} for p in prompts], GREEDY, use_tqdm=False)
    assert [o.outputs[0].token_ids for o in guided] == [o.outputs[0].token_ids for o in plain]
