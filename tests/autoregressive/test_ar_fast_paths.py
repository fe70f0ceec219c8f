"""The fast paths equal the plain ones: ended rows leaving the decode batch, prompts prefilled once
(in the decoder and in perplexity scoring), with the forward rows they save counted."""

import pytest
import torch
from ar_models import PAD, prompts, tiny_gpt2, tiny_llama
from transformers import LogitsProcessorList, StoppingCriteriaList, TemperatureLogitsWarper, TopPLogitsWarper

from unified_guidance.autoregressive import CausalLMModel, generate
from unified_guidance.autoregressive.decoding import RowDecoder, distinct_rows, kept_rows
from unified_guidance.autoregressive.mixing import Mixing
from unified_guidance.autoregressive.progress import decode_plan
from unified_guidance.autoregressive.sample import decode
from unified_guidance.autoregressive.spec import DecodeSpec
from unified_guidance.evaluation.text import PromptScorer, continuation_nll
from unified_guidance.guidance import Guidance
from unified_guidance.schedules.scale import Interval

TOKENS = 8


def test_kept_rows_keeps_each_row_with_its_partners_in_every_block():
    keep = torch.tensor([True, False, True, False])
    assert kept_rows(keep, 1).tolist() == [0, 2]
    assert kept_rows(keep, 3).tolist() == [0, 2, 4, 6, 8, 10]  # [cond; ref; perturbed ref], 4 rows each
    assert kept_rows(torch.zeros(3, dtype=torch.bool), 2).tolist() == []


def test_distinct_rows_are_first_occurrences_in_order():
    ids = torch.tensor([[5, 6], [7, 8], [5, 6], [0, 6], [7, 8]])
    mask = torch.tensor([[1, 1], [1, 1], [1, 1], [0, 1], [1, 1]])  # row 3: same token, padded: distinct
    first, inverse = distinct_rows(ids, mask)
    assert first.tolist() == [0, 1, 3] and inverse.tolist() == [0, 1, 0, 2, 1]


def test_prefill_runs_repeated_rows_once_with_the_logits_of_all(llama):
    a, b = prompts(1, 5, seed=1), prompts(1, 5, seed=2)
    mask = torch.ones(4, 5, dtype=torch.long)
    repeated = CausalLMModel(llama)
    logits = RowDecoder(repeated, torch.cat([a, b, a, a]), mask).prefill()
    once = RowDecoder(CausalLMModel(llama), torch.cat([a, b]), mask[:2]).prefill()
    torch.testing.assert_close(logits, once[[0, 1, 0, 0]], rtol=0, atol=1e-12)
    assert repeated.stats.rows == 2


def _spec(guidance: Guidance, eos: int, drop: bool, sample: bool) -> DecodeSpec:
    warpers = [TemperatureLogitsWarper(0.7), TopPLogitsWarper(0.9)] if sample else []
    return DecodeSpec(
        mixing=Mixing(guidance), plan=decode_plan(guidance, TOKENS),
        processors=LogitsProcessorList(warpers), stopping=StoppingCriteriaList([]), eos=torch.tensor([eos]),
        pad_token_id=PAD, do_sample=sample, generator=torch.Generator().manual_seed(3), drop_finished=drop,
    )  # fmt: skip


def _decode(lm, ids, neg, guidance, eos, drop, sample):
    model = CausalLMModel(lm, pad_token_id=PAD)
    ref = (neg, torch.ones_like(neg))
    out, stats = decode(model, (ids, torch.ones_like(ids)), ref, _spec(guidance, eos, drop, sample))
    new_tokens = out.shape[1] - ids.shape[1]
    assert (stats.nfe, stats.steps, stats.forward_rows) == (new_tokens, new_tokens, model.stats.rows)
    plan = decode_plan(guidance, TOKENS)  # the reference block is not run from unused_from(0) on
    assert stats.skipped_reference == max(0, new_tokens - plan.unused_from(0))
    return out, model.stats.rows


@pytest.mark.parametrize("sample", [False, True], ids=["greedy", "sampled"])
@pytest.mark.parametrize("scale", [3.0, Interval(3.0, lo=0.0, hi=0.5)], ids=["cfg", "interval"])
def test_dropping_ended_rows_gives_the_tokens_and_stream_of_the_plain_loop(gpt2, sample, scale):
    n = 6
    ids = prompts(n, 4, seed=5).repeat_interleave(2, 0)[:n]  # rows 0/1 and 2/3 repeat a prompt
    neg = prompts(1, 2, seed=6).expand(n, -1)  # one shared negative prompt
    free, _ = _decode(gpt2, ids, neg, Guidance(scale=scale), eos=-1, drop=False, sample=sample)
    eos = int(free[0, 4 + 2])  # row 0 ends at its third token; the others when (if) they meet it
    plain, plain_rows = _decode(gpt2, ids, neg, Guidance(scale=scale), eos, drop=False, sample=sample)
    fast, fast_rows = _decode(gpt2, ids, neg, Guidance(scale=scale), eos, drop=True, sample=sample)
    assert torch.equal(fast, plain)
    new = fast[:, 4:]
    ended = torch.isin(new, torch.tensor([eos])).long().cumsum(1) > 0  # (n, T): ended at or before t
    steps = new.shape[1]
    assert 0 < int(ended[:, -2].sum()) < n  # some rows, not all, left before the last step
    # Prefill: 3 distinct prompts + 1 negative; then one row per live output and block (2 while guided).
    drop_at = decode_plan(Guidance(scale=scale), TOKENS).unused_from(0)
    blocks = [2 if k < drop_at else 1 for k in range(1, steps)]
    live = [int((~ended[:, k - 1]).sum()) for k in range(1, steps)]
    assert fast_rows == 4 + sum(b * m for b, m in zip(blocks, live, strict=True))
    assert plain_rows == 4 + sum(b * n for b in blocks)


def test_generate_drops_ended_rows_and_still_matches_transformers_greedy(gpt2):
    ids = prompts(3, 4, seed=6)
    free = gpt2.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=TOKENS, do_sample=False,
                         eos_token_id=None, pad_token_id=PAD)  # fmt: skip
    eos = int(free[0, 5])
    ours = generate(gpt2, ids, guidance=1.0, max_new_tokens=TOKENS, eos_token_id=eos, pad_token_id=PAD)
    theirs = gpt2.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=TOKENS, do_sample=False,
                           eos_token_id=eos, pad_token_id=PAD)  # fmt: skip
    assert torch.equal(ours, theirs)


def _scoring_case():
    p_ids = torch.cat([prompts(1, 6, seed=1), prompts(1, 6, seed=2), prompts(1, 6, seed=3)])
    p_mask = torch.tensor([[1] * 6, [0, 0, 1, 1, 1, 1], [0, 1, 1, 1, 1, 1]])
    p_ids = p_ids.masked_fill(p_mask == 0, PAD)
    rows = torch.tensor([0, 0, 1, 2, 1, 0, 2])
    cont = prompts(7, 5, seed=4)
    lengths = torch.tensor([5, 3, 1, 5, 4, 2, 5])
    c_mask = (torch.arange(5)[None] < lengths[:, None]).long()
    return p_ids, p_mask, rows, cont, c_mask


@torch.no_grad()
def _stateless_nll(lm, p_ids, p_mask, cont, c_mask):
    """The plain computation: one forward over prompt + continuation, log-softmax in float64."""
    ids, mask = torch.cat([p_ids, cont], 1), torch.cat([p_mask, c_mask], 1)
    logits = lm(input_ids=ids, attention_mask=mask, position_ids=(mask.cumsum(1) - 1).clamp(min=0)).logits
    logp = torch.log_softmax(logits[:, p_ids.shape[1] - 1 : -1].double(), -1)
    return -(logp.gather(-1, cont[..., None]).squeeze(-1) * c_mask).sum(1)


@pytest.mark.parametrize(
    ("make", "dtype", "rtol"),
    [(tiny_llama, torch.float64, 1e-12), (tiny_gpt2, torch.float64, 1e-12), (tiny_llama, torch.float32, 1e-6)],
)
def test_prompt_scorer_equals_the_stateless_continuation_nll(make, dtype, rtol):
    lm = make(dtype=dtype)
    p_ids, p_mask, rows, cont, c_mask = _scoring_case()
    seen = []
    hook = lm.register_forward_pre_hook(lambda _, args, kw: seen.append(tuple(kw["input_ids"].shape)), with_kwargs=True)
    scorer = PromptScorer(lm, torch.cat([p_ids, p_ids[:1]]), torch.cat([p_mask, p_mask[:1]]))  # row 3 = row 0
    nll, count = scorer(rows, cont, c_mask)
    again, _ = scorer(rows[:2], cont[:2, :1], c_mask[:2, :1])  # one token: the prefill's logits alone
    hook.remove()
    plain, plain_count = continuation_nll(lm, p_ids[rows], p_mask[rows], cont, c_mask)
    oracle = _stateless_nll(lm, p_ids[rows], p_mask[rows], cont, c_mask)
    torch.testing.assert_close(nll, oracle, rtol=rtol, atol=0)
    torch.testing.assert_close(plain, oracle, rtol=rtol, atol=0)
    assert torch.equal(count, plain_count) and count.tolist() == [5, 3, 1, 5, 4, 2, 5]
    first = _stateless_nll(lm, p_ids[rows[:2]], p_mask[rows[:2]], cont[:2, :1], c_mask[:2, :1])
    torch.testing.assert_close(again, first, rtol=rtol, atol=0)
    assert seen == [(3, 6), (7, 4)]  # the 3 distinct prompts once; the continuations without their last token


def test_prompt_scorer_names_bad_rows(gpt2):
    p_ids, p_mask, rows, cont, c_mask = _scoring_case()
    scorer = PromptScorer(gpt2, p_ids, p_mask)
    with pytest.raises(ValueError, match=r"rows: expected one prompt index in 0 … 2 per continuation"):
        scorer(torch.tensor([0, 3]), cont[:2], c_mask[:2])
    with pytest.raises(ValueError, match="masks: expected the shapes of their ids"):
        scorer(rows, cont, c_mask[:, :2])
