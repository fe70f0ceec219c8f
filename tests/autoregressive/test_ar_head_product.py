"""The LM head's weight-left product: the same logits and tokens as the model's own F.linear."""

import pytest
import torch
from ar_models import PAD, prompts, tiny_gpt2, tiny_llama
from transformers import GPT2Config, GPT2LMHeadModel

import unified_guidance as ug
from unified_guidance.autoregressive import CausalLMModel
from unified_guidance.autoregressive.head import MAX_ROWS, head_product, output_head, pays_off, weight_left_linear


def big_vocab_gpt2(dtype=torch.float32) -> GPT2LMHeadModel:
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=8192, n_positions=64, n_embd=16, n_layer=1, n_head=2, eos_token_id=1)
    return GPT2LMHeadModel(config).to(dtype).eval()


def test_weight_left_linear_is_linear_in_float64():
    x, w, b = torch.randn(3, 2, 5, dtype=torch.float64), torch.randn(7, 5, dtype=torch.float64), torch.randn(7)
    b = b.double()
    torch.testing.assert_close(weight_left_linear(x, w, b), torch.nn.functional.linear(x, w, b), rtol=1e-13, atol=0)
    torch.testing.assert_close(weight_left_linear(x, w, None), x @ w.T, rtol=1e-13, atol=0)


def test_it_pays_off_only_for_a_few_rows_of_a_large_float_head_on_the_cpu():
    head = output_head(big_vocab_gpt2())
    assert [pays_off(head, r) for r in (1, 2, MAX_ROWS, MAX_ROWS + 1)] == [False, True, True, False]
    assert not pays_off(output_head(big_vocab_gpt2(torch.bfloat16)), 2)
    assert not pays_off(output_head(tiny_gpt2()), 2)  # 48 tokens: nothing to gain


@pytest.mark.parametrize("build", [tiny_gpt2, tiny_llama], ids=["gpt2", "llama"])
def test_forced_weight_left_decodes_the_same_tokens_and_logits(build):
    lm = build()
    ids, neg = prompts(2, 5), prompts(2, 3, seed=2)
    plain = CausalLMModel(lm, pad_token_id=PAD, head_product="linear")
    left = CausalLMModel(lm, pad_token_id=PAD, head_product="weight-left")
    t = torch.zeros(2)
    torch.testing.assert_close(left(ids, t, neg), plain(ids, t, neg), rtol=1e-12, atol=1e-12)
    out = [ug.autoregressive.generate(m, ids, negative_input_ids=neg, guidance=3.0, max_new_tokens=10, eos_token_id=[])
           for m in (plain, left)]  # fmt: skip
    torch.testing.assert_close(out[1], out[0], rtol=0, atol=0)


def test_auto_takes_the_weight_left_path_for_guided_rows_and_leaves_the_head_as_it_was():
    lm = big_vocab_gpt2(torch.float64)
    head = output_head(lm)
    seen = []
    head.register_forward_pre_hook(lambda module, args: seen.append((args[0].shape[0], "forward" in vars(module))))
    ids = torch.randint(3, 8192, (1, 6))
    auto = ug.autoregressive.generate(lm, ids, guidance=2.0, max_new_tokens=4, eos_token_id=[])
    plain = ug.autoregressive.generate(CausalLMModel(lm, head_product="linear"), ids, guidance=2.0, max_new_tokens=4,
                                       eos_token_id=[])  # fmt: skip
    torch.testing.assert_close(auto, plain, rtol=0, atol=0)
    assert seen[:4] == [(2, True)] * 4  # 2 rows (cond + reference): the patched product
    assert seen[4:] == [(2, False)] * 4  # "linear": the model's own
    assert "forward" not in vars(head)


def test_the_head_is_restored_after_an_exception_and_a_foreign_forward_is_left_alone():
    head = output_head(big_vocab_gpt2())
    with pytest.raises(RuntimeError, match="boom"), head_product(head, "weight-left"):
        assert "forward" in vars(head)
        raise RuntimeError("boom")
    assert "forward" not in vars(head)
    foreign = head.forward = lambda x: x
    with head_product(head, "weight-left"):
        assert head.forward is foreign


def test_an_unknown_head_product_is_refused():
    with pytest.raises(ValueError, match=r"head_product: expected one of auto, linear, weight-left, got 'fast'"):
        CausalLMModel(tiny_gpt2(), head_product="fast")
