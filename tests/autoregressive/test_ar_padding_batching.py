"""Left padding, position ids, one negative prompt for a batch, one forward over 2B rows."""

import pytest
import torch
from ar_models import PAD, prompts

from unified_guidance.autoregressive import CausalLMModel, generate
from unified_guidance.autoregressive.decoding import RowDecoder, stack_prompts
from unified_guidance.autoregressive.model import left_pad

COMMON = {"eos_token_id": [], "pad_token_id": PAD}  # no early stop: rows compare token by token


def _padded(ids: torch.Tensor, length: int) -> tuple[torch.Tensor, torch.Tensor]:
    return left_pad(ids, torch.ones_like(ids), length, PAD)


def test_cached_two_branch_logits_equal_the_stateless_model(llama):
    # The cached 2B-row batch (different prompt lengths, left padding) against full forwards.
    model = CausalLMModel(llama)
    cond, neg = prompts(2, 6, seed=1), prompts(2, 3, seed=2)
    decoder = RowDecoder(model, *stack_prompts([(cond, torch.ones_like(cond)), (neg, torch.ones_like(neg))], PAD))
    logits = decoder.prefill()
    tokens = torch.empty(2, 0, dtype=torch.long)
    for step in range(3):
        torch.testing.assert_close(logits[:2], model(tokens, 0.0, cond), rtol=0, atol=1e-10)
        torch.testing.assert_close(logits[2:], model(tokens, 0.0, neg), rtol=0, atol=1e-10)
        new = torch.tensor([5 + step, 9 + step])
        tokens = torch.cat([tokens, new[:, None]], dim=1)
        logits = decoder.step(new.repeat(2))


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_left_padded_negative_prompts_give_the_tokens_of_unpadded_ones(arch, request):
    lm = request.getfixturevalue(arch)
    ids = prompts(3, 5, seed=3)
    negs = [prompts(1, n, seed=20 + n) for n in (2, 4, 6)]  # three lengths
    alone = [
        generate(lm, ids[i : i + 1], negative_input_ids=negs[i], guidance=3.0, max_new_tokens=6, **COMMON)
        for i in range(3)
    ]
    padded = [_padded(n, 6) for n in negs]
    batched = generate(
        lm,
        ids,
        negative_input_ids=torch.cat([p[0] for p in padded]),
        negative_attention_mask=torch.cat([p[1] for p in padded]),
        guidance=3.0,
        max_new_tokens=6,
        **COMMON,
    )
    assert torch.equal(batched, torch.cat(alone))


def test_left_padded_prompts_give_the_tokens_of_unpadded_ones(gpt2):
    short, long = prompts(1, 3, seed=4), prompts(1, 7, seed=5)
    neg = prompts(1, 2, seed=6)
    alone = [generate(gpt2, p, negative_input_ids=neg, guidance=2.0, max_new_tokens=6, **COMMON) for p in (short, long)]
    ids, mask = _padded(short, 7)
    batched = generate(
        gpt2,
        torch.cat([ids, long]),
        attention_mask=torch.cat([mask, torch.ones_like(long)]),
        negative_input_ids=neg,
        guidance=2.0,
        max_new_tokens=6,
        **COMMON,
    )
    assert torch.equal(batched[0, 4:], alone[0][0])  # the padded row carries 4 pad tokens in front
    assert torch.equal(batched[1], alone[1][0])


def test_one_negative_prompt_broadcasts_over_the_batch(gpt2):
    ids, neg = prompts(4, 5, seed=7), prompts(1, 3, seed=8)
    shared = generate(gpt2, ids, negative_input_ids=neg, guidance=2.0, max_new_tokens=8, **COMMON)
    repeated = generate(gpt2, ids, negative_input_ids=neg.expand(4, -1), guidance=2.0, max_new_tokens=8, **COMMON)
    assert torch.equal(shared, repeated)


def test_one_forward_over_2b_rows_per_token_and_half_the_builtin_forwards(gpt2):
    ids, neg = prompts(4, 5, seed=9), prompts(4, 3, seed=10)
    rows: list[int] = []

    def count(module, args, kwargs):
        rows.append((args[0] if args else kwargs["input_ids"]).shape[0])

    hook = gpt2.register_forward_pre_hook(count, with_kwargs=True)
    try:
        generate(gpt2, ids, negative_input_ids=neg, guidance=2.0, max_new_tokens=6, **COMMON)
        ours, rows[:] = list(rows), []
        gpt2.generate(
            ids, guidance_scale=2.0, negative_prompt_ids=neg, max_new_tokens=6, eos_token_id=None, pad_token_id=PAD
        )
        builtin = list(rows)
    finally:
        hook.remove()
    assert ours == [8] * 6  # one forward per token, cond and reference rows together
    assert builtin == [4] * 12  # two sequential forwards per token


def test_num_return_sequences_samples_each_prompt_several_times(gpt2):
    ids, neg = prompts(2, 4, seed=11), prompts(1, 3, seed=12)
    gen = torch.Generator().manual_seed(0)
    out = generate(
        gpt2,
        ids,
        negative_input_ids=neg,
        guidance=2.0,
        do_sample=True,
        num_return_sequences=3,
        max_new_tokens=5,
        generator=gen,
        **COMMON,
    )
    assert out.shape == (6, 9)
    assert torch.equal(out[:3, :4], ids[:1].expand(3, -1)) and torch.equal(out[3:, :4], ids[1:].expand(3, -1))


def test_adapter_counts_the_forwards_it_ran(gpt2):
    model = CausalLMModel(gpt2)
    generate(model, prompts(3, 4), guidance=2.0, max_new_tokens=5, **COMMON)
    assert (model.stats.calls, model.stats.rows) == (5, 30)


def test_the_adapter_under_the_engines_guided_model_gives_the_first_guided_token(gpt2):
    import unified_guidance as ug

    model = CausalLMModel(gpt2, space="logprobs")
    ids, neg = prompts(2, 4, seed=13), prompts(2, 4, seed=14)
    empty = torch.empty(2, 0, dtype=torch.long)
    with torch.no_grad():
        guided = ug.guide(model, 2.5)(empty, 0.0, ug.Conditions.single(ids, negative=neg))
        c, u = model(empty, 0.0, ids), model(empty, 0.0, neg)
    torch.testing.assert_close(guided, u + 2.5 * (c - u), rtol=0, atol=1e-12)
    first = generate(gpt2, ids, negative_input_ids=neg, guidance=2.5, max_new_tokens=1, **COMMON)[:, -1]
    assert torch.equal(first, guided.argmax(-1))
