"""Our decode loop against transformers' own generate, where transformers is right (unpadded prompts)."""

import pytest
import torch
from ar_models import EOS, PAD, prompts
from transformers import LogitsProcessorList, RepetitionPenaltyLogitsProcessor

from unified_guidance.autoregressive import GuidanceLogitsProcessor, custom_generate, generate

COMMON = {"eos_token_id": EOS, "pad_token_id": PAD}


@pytest.mark.parametrize("batch", [1, 4])
@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_greedy_tokens_equal_builtin_guidance_scale(arch, batch, request):
    lm = request.getfixturevalue(arch)
    ids, neg = prompts(batch, 6, seed=batch), prompts(batch, 4, seed=10 + batch)
    builtin = lm.generate(ids, guidance_scale=2.5, negative_prompt_ids=neg, max_new_tokens=10, **COMMON)
    ours = generate(lm, ids, negative_input_ids=neg, guidance=2.5, max_new_tokens=10, **COMMON)
    assert ours.shape == builtin.shape
    assert torch.equal(ours, builtin)


def test_default_reference_is_last_prompt_token_like_builtin(gpt2):
    ids = prompts(2, 5, seed=3)
    builtin = gpt2.generate(ids, guidance_scale=3.0, max_new_tokens=12, **COMMON)
    ours = generate(gpt2, ids, guidance=3.0, max_new_tokens=12, **COMMON)
    assert torch.equal(ours, builtin)


def test_scale_one_is_unguided_greedy(gpt2):
    ids = prompts(3, 5, seed=4)
    plain = gpt2.generate(ids, max_new_tokens=12, do_sample=False, **COMMON)
    assert torch.equal(generate(gpt2, ids, guidance=1.0, max_new_tokens=12, **COMMON), plain)


def test_sampling_with_warpers_equals_builtin_under_the_same_seed(gpt2):
    # Same global RNG stream, same guided distribution after temperature/top-k/top-p/min-p: same draws.
    ids, neg = prompts(4, 5, seed=5), prompts(4, 3, seed=6)
    warp = {"temperature": 0.7, "top_k": 20, "top_p": 0.9, "min_p": 0.05}
    torch.manual_seed(123)
    builtin = gpt2.generate(
        ids, guidance_scale=2.0, negative_prompt_ids=neg, do_sample=True, max_new_tokens=10, **warp, **COMMON
    )
    torch.manual_seed(123)
    ours = generate(
        gpt2, ids, negative_input_ids=neg, guidance=2.0, do_sample=True, max_new_tokens=10, **warp, **COMMON
    )
    assert torch.equal(ours, builtin)


def test_repetition_penalty_acts_after_guidance_like_builtin(gpt2):
    ids, neg = prompts(2, 5, seed=7), prompts(2, 3, seed=8)
    builtin = gpt2.generate(
        ids, guidance_scale=2.0, negative_prompt_ids=neg, repetition_penalty=1.8, max_new_tokens=8, **COMMON
    )
    processors = LogitsProcessorList([RepetitionPenaltyLogitsProcessor(1.8)])
    ours = generate(
        gpt2, ids, negative_input_ids=neg, guidance=2.0, logits_processor=processors, max_new_tokens=8, **COMMON
    )
    assert torch.equal(ours, builtin)


def test_logits_processor_entry_point_equals_generate(gpt2):
    ids, neg = prompts(3, 5, seed=9), prompts(1, 4, seed=10)
    ours = generate(gpt2, ids, negative_input_ids=neg, guidance=2.0, max_new_tokens=10, **COMMON)
    proc = GuidanceLogitsProcessor(gpt2, 2.0, negative_input_ids=neg)
    via = gpt2.generate(ids, logits_processor=LogitsProcessorList([proc]), max_new_tokens=10, **COMMON)
    assert torch.equal(via, ours)


def test_custom_generate_entry_point_equals_generate(gpt2):
    ids, neg = prompts(2, 5, seed=11), prompts(2, 3, seed=12)
    ours = generate(gpt2, ids, negative_input_ids=neg, guidance=2.0, max_new_tokens=10, **COMMON)
    via = gpt2.generate(
        ids, custom_generate=custom_generate, guidance=2.0, negative_input_ids=neg, max_new_tokens=10, **COMMON
    )
    assert torch.equal(via, ours)


def test_custom_generate_refuses_double_guidance(gpt2):
    ids = prompts(1, 4, seed=13)
    with pytest.raises(ValueError, match="guidance_scale"):
        gpt2.generate(ids, custom_generate=custom_generate, guidance=2.0, guidance_scale=2.0, max_new_tokens=3)


def test_custom_generate_samples_num_return_sequences_like_generate(gpt2):
    ids, neg = prompts(2, 5, seed=14), prompts(2, 3, seed=15)
    torch.manual_seed(7)
    ours = generate(
        gpt2,
        ids,
        negative_input_ids=neg,
        guidance=2.0,
        do_sample=True,
        top_k=10,
        num_return_sequences=2,
        max_new_tokens=6,
        **COMMON,
    )
    torch.manual_seed(7)
    via = gpt2.generate(
        ids,
        custom_generate=custom_generate,
        guidance=2.0,
        negative_input_ids=neg,
        do_sample=True,
        top_k=10,
        num_return_sequences=2,
        max_new_tokens=6,
        **COMMON,
    )
    assert via.shape == (4, 11) and torch.equal(via, ours)
