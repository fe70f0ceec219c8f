"""Bad input: a clear error naming the argument, what was expected and what came."""

import pytest
import torch
from ar_models import PAD, prompts
from torch import nn

from unified_guidance.autoregressive import CausalLMModel, GuidanceLogitsProcessor, generate
from unified_guidance.guidance import APG, Guidance
from unified_guidance.schedules import Custom, Linear

NO_EOS = {"eos_token_id": [], "pad_token_id": PAD}


def test_negative_prompt_batch_must_match_or_be_one(gpt2):
    with pytest.raises(ValueError, match=r"negative_input_ids: expected batch size 1 \(shared\) or 2.*got 3"):
        generate(gpt2, prompts(2, 4), negative_input_ids=prompts(3, 2), guidance=2.0, max_new_tokens=2)


class NoCache(nn.Module):
    def __init__(self):
        super().__init__()
        self.config = object()
        self.proj = nn.Linear(2, 2)

    def forward(self, input_ids, attention_mask=None):
        return self.proj(input_ids.float())


def test_model_without_kv_cache_is_refused():
    with pytest.raises(ValueError, match=r"model: expected a transformers causal LM with a KV cache.*NoCache"):
        generate(NoCache(), prompts(1, 3), guidance=2.0, max_new_tokens=2)
    with pytest.raises(ValueError, match="model: expected a transformers causal LM"):
        CausalLMModel(nn.Linear(3, 3))


def test_schedule_outside_progress_is_refused(gpt2):
    steps = Custom(lambda tau: torch.full_like(tau, 2.0), breakpoints_=(5.0,))  # written for step indices
    with pytest.raises(ValueError, match=r"guidance: expected schedule breakpoints in progress \[0, 1\], got 5.0"):
        generate(gpt2, prompts(1, 3), guidance=steps, max_new_tokens=2)
    with pytest.raises(ValueError, match="tau_end"):
        Linear(1.0, 3.0, tau_start=0.0, tau_end=20.0)
    with pytest.raises(TypeError, match="guidance: expected a number, a Schedule or a Guidance"):
        generate(gpt2, prompts(1, 3), guidance="strong", max_new_tokens=2)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_beams": 2, "do_sample": True}, "do_sample: beam sampling"),
        ({"num_beams": 2, "num_return_sequences": 3}, "num_return_sequences: expected at most num_beams = 2, got 3"),
        ({"num_return_sequences": 2}, "num_return_sequences: greedy decoding"),
        ({"num_beams": 2, "streamer": object()}, "num_beams: beam search supports neither streamer"),
        ({"temperature": 0.5}, "do_sample: temperature/top_k/top_p/min_p act on sampling"),
        ({"guidance": Guidance(rule=APG(), scale=2.0)}, "guidance: the rule APG runs in space 'x0'"),
        ({"space": "probs"}, "space: expected one of logits, logprobs, got 'probs'"),
        ({"plausibility": 0.0}, r"plausibility: expected α in \(0, 1\], got 0.0"),
        ({"max_new_tokens": 0}, "max_new_tokens: expected an integer ≥ 1, got 0"),
    ],
)
def test_unsupported_combinations_are_refused(gpt2, kwargs, message):
    args = {"guidance": 2.0, "max_new_tokens": 2, **NO_EOS, **kwargs}
    with pytest.raises(ValueError, match=message):
        generate(gpt2, prompts(1, 3), **args)


def test_bad_prompts_are_refused(gpt2):
    ids = prompts(2, 3)
    with pytest.raises(ValueError, match=r"input_ids: expected integer token ids of shape \(batch, length\)"):
        generate(gpt2, ids.float(), max_new_tokens=1)
    with pytest.raises(ValueError, match=r"attention_mask: expected the shape of input_ids \(2, 3\), got \(2, 2\)"):
        generate(gpt2, ids, attention_mask=torch.ones(2, 2, dtype=torch.long), max_new_tokens=1)
    right = torch.tensor([[1, 1, 0], [1, 1, 1]])
    with pytest.raises(ValueError, match="attention_mask: expected left padding"):
        generate(gpt2, ids, attention_mask=right, max_new_tokens=1)
    with pytest.raises(ValueError, match="negative_attention_mask: given without negative_input_ids"):
        generate(gpt2, ids, negative_attention_mask=torch.ones_like(ids), guidance=2.0, max_new_tokens=1)


def test_processor_needs_the_length_for_a_varying_schedule(gpt2):
    with pytest.raises(ValueError, match="max_new_tokens: a schedule over progress needs the number of new tokens"):
        GuidanceLogitsProcessor(gpt2, Linear(1.0, 3.0))
