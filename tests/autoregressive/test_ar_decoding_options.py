"""Mixing space, plausibility mask, streaming, EOS and stopping criteria per row."""

import torch
from ar_models import EOS, PAD, prompts
from transformers import StoppingCriteria, StoppingCriteriaList
from transformers.generation.streamers import BaseStreamer

from unified_guidance.autoregressive import generate
from unified_guidance.autoregressive.mixing import Mixing, guided_scores, plausibility_mask
from unified_guidance.guidance import Guidance

NO_EOS = {"eos_token_id": [], "pad_token_id": PAD}


def test_cfg_in_logits_and_logprobs_gives_the_same_distribution():
    # log-normalisers mix affinely too, so the two lines differ by a per-row constant.
    gen = torch.Generator().manual_seed(0)
    c, u = (torch.randn(3, 11, generator=gen, dtype=torch.float64) for _ in range(2))
    scale, tau = torch.tensor(2.5, dtype=torch.float64), torch.tensor(0.0)
    lp, _ = guided_scores(Mixing(Guidance(scale=2.5), "logprobs"), c, [u], [scale], tau, [None])
    lg, _ = guided_scores(Mixing(Guidance(scale=2.5), "logits"), c, [u], [scale], tau, [None])
    torch.testing.assert_close(torch.log_softmax(lp, -1), torch.log_softmax(lg, -1), rtol=0, atol=1e-12)
    expected = torch.log_softmax(u, -1) + 2.5 * (torch.log_softmax(c, -1) - torch.log_softmax(u, -1))
    torch.testing.assert_close(lp, expected, rtol=0, atol=1e-12)


def test_raw_logit_mixing_decodes_the_same_tokens_under_cfg(gpt2):
    ids, neg = prompts(2, 4, seed=1), prompts(2, 3, seed=2)
    a = generate(gpt2, ids, negative_input_ids=neg, guidance=3.0, max_new_tokens=6, space="logits", **NO_EOS)
    b = generate(gpt2, ids, negative_input_ids=neg, guidance=3.0, max_new_tokens=6, space="logprobs", **NO_EOS)
    assert torch.equal(a, b)


def test_plausibility_mask_keeps_exactly_the_tokens_above_alpha_times_the_max():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.04, 0.16]], dtype=torch.float64))
    masked = plausibility_mask(torch.zeros_like(logits), logits, alpha=0.3)  # cutoff 0.15
    assert torch.isinf(masked).tolist() == [[False, False, True, False]]


def test_full_plausibility_mask_makes_guided_greedy_the_conditional_greedy(gpt2):
    ids, neg = prompts(2, 4, seed=3), prompts(2, 3, seed=4)
    plain = generate(gpt2, ids, guidance=1.0, max_new_tokens=8, **NO_EOS)
    masked = generate(gpt2, ids, negative_input_ids=neg, guidance=5.0, plausibility=1.0, max_new_tokens=8, **NO_EOS)
    assert torch.equal(masked, plain)


class Collect(BaseStreamer):
    def __init__(self):
        self.values, self.ended = [], 0

    def put(self, value):
        self.values.append(value.clone())

    def end(self):
        self.ended += 1


def test_streamer_gets_the_prompt_then_each_token(gpt2):
    streamer, ids = Collect(), prompts(1, 4, seed=5)
    out = generate(gpt2, ids, guidance=2.0, max_new_tokens=6, streamer=streamer, **NO_EOS)
    assert torch.equal(streamer.values[0], ids)
    assert torch.cat([v.reshape(-1) for v in streamer.values[1:]]).tolist() == out[0, 4:].tolist()
    assert streamer.ended == 1


def test_eos_stops_each_row_on_its_own(gpt2):
    ids, neg = prompts(3, 4, seed=6), prompts(1, 2, seed=7)
    free = generate(gpt2, ids, negative_input_ids=neg, guidance=2.0, max_new_tokens=8, **NO_EOS)
    eos = int(free[0, 5])  # row 0's second token becomes the end of sequence
    out = generate(
        gpt2, ids, negative_input_ids=neg, guidance=2.0, max_new_tokens=8, eos_token_id=eos, pad_token_id=PAD
    )
    for row, new in zip(out[:, 4:].tolist(), free[:, 4:].tolist(), strict=True):
        stop = new.index(eos) + 1 if eos in new else len(new)
        assert row[:stop] == new[:stop]
        assert all(t == PAD for t in row[stop:])
    assert out.shape[1] == 4 + max((r.index(eos) + 1 if eos in r else 8) for r in free[:, 4:].tolist())


class StopFirstRow(StoppingCriteria):
    def __call__(self, input_ids, scores, **kwargs):
        done = torch.zeros(input_ids.shape[0], dtype=torch.bool)
        done[0] = True
        return done


def test_stopping_criteria_apply_per_row(gpt2):
    ids = prompts(2, 4, seed=8)
    free = generate(gpt2, ids, guidance=2.0, max_new_tokens=5, **NO_EOS)
    out = generate(
        gpt2, ids, guidance=2.0, max_new_tokens=5, stopping_criteria=StoppingCriteriaList([StopFirstRow()]), **NO_EOS
    )
    assert out[0, 4:].tolist() == [int(free[0, 4])] + [PAD] * 4
    assert torch.equal(out[1], free[1])


def test_default_special_tokens_come_from_the_generation_config(gpt2):
    out = generate(gpt2, prompts(1, 4, seed=9), guidance=2.0, max_new_tokens=12)
    new = out[0, 4:].tolist()
    assert EOS not in new[:-1]  # decoding stops at the config's EOS, if it comes
