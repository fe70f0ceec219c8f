"""Few-row products (oneDNN, the head weight-left): the same logits and tokens as the model's own layers."""

import pytest
import torch
from ar_models import PAD, prompts, tiny_gpt2
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

import unified_guidance as ug
from unified_guidance.autoregressive import CausalLMModel
from unified_guidance.autoregressive import products as P
from unified_guidance.compat import onednn

VOCAB = 8192


def wide_gpt2(dtype=torch.float32) -> GPT2LMHeadModel:
    """Layers of 512 × 1536 and 512 × 2048 weights (≥ P.MIN_WEIGHTS) and an 8192-token head."""
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=VOCAB, n_positions=64, n_embd=512, n_layer=2, n_head=4, eos_token_id=1)
    return GPT2LMHeadModel(config).to(dtype).eval()


def wide_llama() -> LlamaForCausalLM:
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=VOCAB, hidden_size=512, intermediate_size=1024, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                         eos_token_id=1)  # fmt: skip
    return LlamaForCausalLM(config).eval()


def layer(lm, name: str) -> P.Layer:
    (found,) = [la for la in P.product_layers(lm) if la.module is lm.get_submodule(name)]
    return found


def test_weight_left_linear_is_linear_in_float64():
    x, w, b = torch.randn(3, 2, 5, dtype=torch.float64), torch.randn(7, 5, dtype=torch.float64), torch.randn(7)
    b = b.double()
    torch.testing.assert_close(P.weight_left_linear(x, w, b), torch.nn.functional.linear(x, w, b), rtol=1e-13, atol=0)
    torch.testing.assert_close(P.weight_left_linear(x, w, None), x @ w.T, rtol=1e-13, atol=0)


def test_the_onednn_probe_answers_where_torch_has_onednn_and_its_product_is_f_linear():
    assert onednn.available() == torch.backends.mkldnn.is_available()
    x, w, b = torch.randn(2, 512), torch.randn(768, 512), torch.randn(768)
    for weight in (w, w.T.contiguous().T):  # stored (out, in) and (in, out), as nn.Linear and Conv1D hold them
        # entries of size ~20 summed over 512 terms in another order: float32 rounding only
        expected = torch.nn.functional.linear(x, w, b)
        torch.testing.assert_close(onednn.linear(x, weight, b), expected, rtol=1e-5, atol=1e-4)


def test_the_layers_found_are_plain_linear_and_conv1d_layers_with_their_weight_as_out_by_in():
    lm = wide_gpt2()
    layers = P.product_layers(lm)
    assert len(layers) == 2 * 4 + 1  # c_attn, c_proj, c_fc, mlp.c_proj per block; the head
    assert [la.module for la in layers if not la.stored_in_out] == [lm.lm_head]
    attn = layer(lm, "transformer.h.0.attn.c_attn")
    assert attn.stored_in_out and attn.weight().shape == (1536, 512)


def test_routes_a_few_rows_of_large_cpu_weights_and_leaves_everything_else_to_the_layer():
    lm = wide_gpt2()
    head, attn = layer(lm, "lm_head"), layer(lm, "transformer.h.0.attn.c_attn")
    dnn = "onednn" if onednn.available() else None
    with torch.no_grad():
        assert [P.route(head, torch.zeros(r, 512)) for r in (1, 2, 4, 5, P.MAX_ROWS, P.MAX_ROWS + 1)] == [
            dnn, "weight-left", "weight-left", dnn, dnn, None]  # fmt: skip
        rows = (1, 2, P.MAX_ROWS, P.MAX_ROWS + 1)
        assert [P.route(attn, torch.zeros(r, 1, 512)) for r in rows] == [dnn] * 3 + [None]
        assert P.route(attn, torch.zeros(2, 512, dtype=torch.float64)) is None  # mixed dtypes
        small = layer(tiny_gpt2(dtype=torch.float32), "transformer.h.0.attn.c_attn")  # 32 × 96 < MIN_WEIGHTS
        assert P.route(small, torch.zeros(2, 32)) is None
    assert P.route(attn, torch.zeros(2, 512)) is None  # a gradient to record: the layer's own product
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        assert P.route(attn, torch.zeros(2, 512)) is None  # autocast's cast belongs to the layer's product
    lm64 = wide_gpt2(torch.float64)
    with torch.no_grad():
        assert P.route(layer(lm64, "lm_head"), torch.zeros(2, 512, dtype=torch.float64)) == "weight-left"
        assert P.route(layer(lm64, "transformer.h.0.attn.c_attn"), torch.zeros(2, 512, dtype=torch.float64)) is None
        bf16 = wide_gpt2(torch.bfloat16)
        assert P.route(layer(bf16, "lm_head"), torch.zeros(2, 512, dtype=torch.bfloat16)) is None


@pytest.mark.parametrize("build", [wide_gpt2, wide_llama], ids=["gpt2", "llama"])
@pytest.mark.parametrize("batch", [1, 4])
def test_auto_decodes_the_tokens_of_the_models_own_products_and_takes_the_routes(build, batch, monkeypatch):
    lm = build()
    calls = []
    real = onednn.linear
    left, real_left = [], P.weight_left_linear
    monkeypatch.setattr(onednn, "linear", lambda x, w, b: calls.append(x.shape[0]) or real(x, w, b))
    monkeypatch.setattr(P, "weight_left_linear", lambda x, w, b: left.append(x.shape[0]) or real_left(x, w, b))
    ids, neg = torch.randint(3, VOCAB, (batch, 6)), torch.randint(3, VOCAB, (1, 3))
    own, auto = CausalLMModel(lm, products="model"), CausalLMModel(lm)
    tokens = [ug.autoregressive.generate(m, ids, negative_input_ids=neg, guidance=3.0, max_new_tokens=6,
                                         eos_token_id=[]) for m in (own, auto)]  # fmt: skip
    torch.testing.assert_close(tokens[1], tokens[0], rtol=0, atol=0)
    # 5 cached steps over 2·batch rows, each through every large layer by its route
    with torch.no_grad():
        routes = [P.route(la, torch.zeros(2 * batch, la.weight().shape[1])) for la in P.product_layers(lm)]
    assert calls.count(2 * batch) == 5 * routes.count("onednn")
    # and at batch 1 the prefill's head over its 2 prompts (cond, negative) at their last position
    assert left.count(2 * batch) == 5 * routes.count("weight-left") + (batch == 1)
    assert routes.count(None) < len(routes)
    x = tokens[0][:2, :3]
    t = torch.zeros(x.shape[0])
    with torch.no_grad():
        torch.testing.assert_close(auto.predict(x[:, -1:], t, ids[:2]), own.predict(x[:, -1:], t, ids[:2]))
    assert all("forward" not in vars(la.module) for la in P.product_layers(lm))


def test_layers_are_restored_after_an_exception_and_a_foreign_forward_is_left_alone():
    lm = wide_gpt2()
    pairs = [(la, P.routed_forward(la)) for la in P.product_layers(lm)]
    with pytest.raises(RuntimeError, match="boom"), P.few_row_products(pairs):
        assert all("forward" in vars(la.module) for la, _ in pairs)
        raise RuntimeError("boom")
    assert all("forward" not in vars(la.module) for la, _ in pairs)
    foreign = lm.lm_head.forward = lambda x: x
    with P.few_row_products(pairs):
        assert lm.lm_head.forward is foreign
        assert "forward" in vars(lm.transformer.h[0].attn.c_attn)


def test_gradients_flow_through_the_models_own_products():
    lm = wide_gpt2()
    model = CausalLMModel(lm, pad_token_id=PAD)
    logits = model.predict(torch.randint(3, VOCAB, (1, 1)), torch.zeros(1), torch.randint(3, VOCAB, (1, 4)))
    logits.logsumexp(-1).sum().backward()
    assert lm.transformer.h[0].attn.c_attn.weight.grad is not None
    assert lm.lm_head.weight.grad is not None


def test_unknown_products_are_refused():
    with pytest.raises(ValueError, match=r"products: expected one of auto, model, got 'fast'"):
        CausalLMModel(tiny_gpt2(), products="fast")


def test_the_models_own_products_leave_every_layer_alone():
    lm = tiny_gpt2()
    seen = []
    lm.lm_head.register_forward_pre_hook(lambda module, args: seen.append("forward" in vars(module)))
    ug.autoregressive.generate(CausalLMModel(lm, pad_token_id=PAD, products="model"), prompts(1, 4), guidance=2.0,
                               max_new_tokens=3, eos_token_id=[])  # fmt: skip
    assert seen == [False] * 3
