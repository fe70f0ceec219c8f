"""GuidanceLogitsProcessor keeps each row's own reference, even where rows share a token history."""

import pytest
import torch
from ar_models import EOS, PAD, prompts
from test_ar_beam_schedules import slow_beam_search
from transformers import LogitsProcessorList

from unified_guidance.autoregressive import CausalLMModel, GuidanceLogitsProcessor, generate
from unified_guidance.schedules import Custom


def test_rows_with_one_prompt_and_different_negatives_keep_their_own_reference(gpt2):
    # Regression: rows were matched to their parent by token history, so row 1 inherited row 0's cache.
    ids = prompts(1, 5, seed=21).repeat(2, 1)
    neg = prompts(2, 3, seed=22)
    ours = generate(
        gpt2, ids, negative_input_ids=neg, guidance=3.0, max_new_tokens=8, eos_token_id=EOS, pad_token_id=PAD
    )
    assert not torch.equal(ours[0], ours[1])  # the negatives matter, or the test shows nothing
    proc = GuidanceLogitsProcessor(gpt2, 3.0, negative_input_ids=neg)
    via = gpt2.generate(
        ids, logits_processor=LogitsProcessorList([proc]), max_new_tokens=8, eos_token_id=EOS, pad_token_id=PAD
    )
    assert torch.equal(via, ours)


def test_beams_of_two_identical_prompts_with_different_negatives(gpt2):
    model = CausalLMModel(gpt2)
    ids = prompts(1, 4, seed=23).repeat(2, 1)
    neg = prompts(2, 3, seed=24)
    proc = GuidanceLogitsProcessor(gpt2, 4.0, negative_input_ids=neg)
    gpt2.generation_config.eos_token_id = None
    try:
        out = gpt2.generate(
            ids,
            logits_processor=LogitsProcessorList([proc]),
            num_beams=2,
            num_return_sequences=2,
            max_new_tokens=3,
            pad_token_id=PAD,
            length_penalty=0.0,
        )
    finally:
        gpt2.generation_config.eos_token_id = EOS
    for b in range(2):
        expected = slow_beam_search(model, ids[b : b + 1], neg[b : b + 1], 4.0, 2, 3, renormalise=False)
        assert out[2 * b : 2 * b + 2, 4:].tolist() == expected
    assert out[:2].tolist() != out[2:].tolist()


def test_a_custom_schedule_whose_unit_intervals_contradict_its_values_is_refused(gpt2):
    lying = Custom(lambda tau: torch.full_like(tau, 3.0), unit_intervals_=((0.5, 1.0),))
    message = r"guidance: the Custom schedule declares s = 1 on \[0.5, 1\] \(unit_intervals\) but gives s = 3 at τ"
    with pytest.raises(ValueError, match=message):
        generate(gpt2, prompts(1, 3), guidance=lying, max_new_tokens=3, eos_token_id=[], pad_token_id=PAD)
