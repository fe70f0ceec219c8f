"""Guidance-free token models: β = 1/s as an input of the GPT-2, and decoding that folds the CFG
reference into one row per sample, against the stateless oracle ``model(tokens, t, cond, beta=)``."""

import pytest
import torch
from ar_models import PAD, VOCAB, prompts, tiny_gpt2
from transformers import LogitsProcessor, LogitsProcessorList, StoppingCriteriaList

from unified_guidance.autoregressive import CausalLMModel, PlausibilityMask, generate
from unified_guidance.autoregressive.decoding import RowDecoder
from unified_guidance.autoregressive.mixing import Mixing
from unified_guidance.autoregressive.progress import FoldPlan, decode_plan
from unified_guidance.autoregressive.sample import decode
from unified_guidance.autoregressive.spec import DecodeSpec
from unified_guidance.guidance import Guidance, GuidedModel
from unified_guidance.schedules.scale import Interval, Linear

NULL, TOKENS = 3, 6


def gft_model(seed: int = 0) -> CausalLMModel:
    """A guidance-free GPT-2 (float64) whose β embedding is no longer zero, as after training."""
    model = CausalLMModel(tiny_gpt2(seed), null_cond=NULL, pad_token_id=PAD, guidance_input=True)
    torch.manual_seed(seed + 10)
    for p in model.strength.parameters():
        torch.nn.init.normal_(p, std=0.5)
    return model


class Record(LogitsProcessor):
    """Keeps the guided scores of every step (the processors see them right after the mixing)."""

    def __init__(self) -> None:
        self.scores: list[torch.Tensor] = []

    def __call__(self, input_ids, scores):
        self.scores.append(scores.clone())
        return scores


def oracle_scores(model: CausalLMModel, prompt, ids: torch.Tensor, betas: torch.Tensor) -> list[torch.Tensor]:
    """The stateless oracle at every step k: log-softmax of model(tokens_<k, τ_k, prompt, beta=β_0…β_k)."""
    length = ids.shape[1] - TOKENS
    out = []
    for k in range(TOKENS):
        history = betas[: k + 1].expand(ids.shape[0], -1)
        logits = model(ids[:, length : length + k], 0.0, prompt, beta=history)
        out.append(torch.log_softmax(logits, dim=-1))
    return out


def test_the_strength_input_starts_at_the_lm_and_beta_1_is_the_conditional_model():
    lm = tiny_gpt2()
    x, c = prompts(3, 4, seed=2), torch.tensor([5, 9, NULL])
    plain = CausalLMModel(lm, null_cond=NULL)(x, 0.0, c)
    fresh = CausalLMModel(lm, null_cond=NULL, guidance_input=True)  # zero-initialised: every β is the LM
    assert fresh.guidance_input and not CausalLMModel(lm).guidance_input
    torch.testing.assert_close(fresh(x, 0.0, c, beta=torch.tensor([0.2, 0.5, 1.0])), plain, rtol=0, atol=0)
    trained = gft_model()
    cond = CausalLMModel(trained.lm, null_cond=NULL)(x, 0.0, c)
    for beta in (None, 1.0, torch.ones(3, 4 + 1, dtype=torch.float64)):
        torch.testing.assert_close(trained(x, 0.0, c, beta=beta), cond, rtol=0, atol=0)
    assert not torch.allclose(trained(x, 0.0, c, beta=0.5), cond)  # the input acts once trained


def test_a_constant_beta_is_the_same_beta_at_every_decode_step():
    model, x, c = gft_model(), prompts(2, 3, seed=4), torch.tensor([5, 9])
    per_row = model(x, 0.0, c, beta=torch.tensor([0.25, 0.5]))
    per_step = model(x, 0.0, c, beta=torch.tensor([[0.25] * 4, [0.5] * 4], dtype=torch.float64))
    torch.testing.assert_close(per_row, per_step, rtol=0, atol=0)


@pytest.mark.parametrize(
    "scale", [3.0, Linear(1.0, 4.0), Interval(2.5, lo=0.3, hi=0.7)], ids=["constant", "ramp", "interval"]
)
def test_kv_cached_decode_of_a_guidance_free_model_is_the_stateless_oracle_in_one_row_per_sample(scale):
    model = gft_model()
    ids = torch.tensor([[PAD, 7, 8], [9, 10, 11], [PAD, PAD, 12]])  # left-padded prompts of three lengths
    mask = (ids != PAD).long()
    record = Record()
    model.reset_stats()
    out = generate(model, ids, attention_mask=mask, guidance=scale, max_new_tokens=TOKENS,
                   eos_token_id=[], logits_processor=LogitsProcessorList([record]))  # fmt: skip
    assert model.stats.calls == TOKENS and model.stats.rows == 3 * TOKENS  # one row per sample per token
    g = Guidance(scale=scale)
    betas = 1.0 / decode_plan(g, TOKENS).scales[:, 0]  # β_k = 1/s(τ_k)
    prompt = {"input_ids": ids, "attention_mask": mask}
    for got, want in zip(record.scores, oracle_scores(model, prompt, out, betas), strict=True):
        torch.testing.assert_close(got, want, rtol=0, atol=1e-10)


def test_the_folded_reference_is_not_a_skip_and_the_rows_show_the_saving():
    model, ids = gft_model(), prompts(4, 2, seed=3)
    g = Guidance(scale=Interval(3.0, lo=0.0, hi=0.5))
    plan = decode_plan(g, TOKENS)
    fold = FoldPlan.build(g, plan, on_null=True)
    guided = [k for k in range(TOKENS) if plan.runs(0, k)]
    assert [fold.folds[k] for k in guided] == [0] * len(guided) and fold.unused_from(plan, 0) == 0
    torch.testing.assert_close(fold.beta, torch.where(plan.unit[:, 0], 1.0, 1 / plan.scales[:, 0]))
    spec = DecodeSpec(
        mixing=Mixing(g), plan=plan, fold=fold, processors=LogitsProcessorList(), stopping=StoppingCriteriaList(),
        eos=torch.tensor([], dtype=torch.long), pad_token_id=PAD,
    )  # fmt: skip
    null = torch.full((4, 1), NULL)
    _, stats = decode(model, (ids, torch.ones_like(ids)), (null, torch.ones_like(null)), spec)
    unguided = TOKENS - len(guided)
    assert (stats.forward_rows, stats.skipped_reference, stats.skipped_rows) == (4 * TOKENS, unguided, 4 * unguided)
    cfg = CausalLMModel(model.lm, null_cond=NULL)  # the same LM guided the usual way: 2B rows per guided token
    generate(cfg, ids, guidance=g, max_new_tokens=TOKENS, eos_token_id=[])
    assert cfg.stats.rows == 4 * TOKENS + 4 * len(guided) - 3  # (the prefill runs the 4 null rows once)


@pytest.mark.parametrize("case", ["negative", "plausibility"])
def test_a_reference_the_model_cannot_fold_runs_at_beta_1(case):
    model, ids = gft_model(), prompts(2, 3, seed=5)
    neg = torch.tensor([[20, 21]]) if case == "negative" else None
    post = (PlausibilityMask(0.1),) if case == "plausibility" else ()
    g = Guidance(scale=2.0, post=post)
    record = Record()
    out = generate(model, ids, negative_input_ids=neg, guidance=g, max_new_tokens=TOKENS, eos_token_id=[],
                   logits_processor=LogitsProcessorList([record]))  # fmt: skip
    assert model.stats.rows == 2 * 2 * TOKENS - 1  # 2B rows per token (the prefill runs the shared reference once)
    ref = neg.expand(2, -1) if neg is not None else torch.full((2, 1), NULL)
    for k, got in enumerate(record.scores):
        x = out[:, 3 : 3 + k]
        c, u = (torch.log_softmax(model(x, 0.0, p), dim=-1) for p in (ids, ref))  # both at β = 1
        want = u + 2.0 * (c - u)
        if post:
            want = post[0](want, c)
        torch.testing.assert_close(got, want, rtol=0, atol=1e-10)


def test_beam_search_of_a_guidance_free_model_runs_the_beams_rows_alone():
    model, ids = gft_model(), prompts(2, 3, seed=6)
    model.reset_stats()
    generate(model, ids, guidance=2.0, num_beams=3, max_new_tokens=4, eos_token_id=[])
    assert model.stats.rows == 2 + 2 * 3 * 3  # B·K rows per token, no reference rows (the prefill: B)


def test_the_guided_model_folds_a_token_model_with_the_shared_decision():
    model, x, c = gft_model(), prompts(3, 4, seed=7), torch.tensor([5, 9, 11])
    model.reset_stats()
    out = GuidedModel(model, Guidance(scale=2.5))(x, 0.0, c)
    assert (model.stats.calls, model.stats.rows) == (1, 3)
    beta = 1 / torch.tensor(2.5)  # the engine's scale is in the time dtype of float 0.0 beside tokens: float32
    torch.testing.assert_close(out, model(x, 0.0, c, beta=beta), rtol=0, atol=0)


def test_prefill_keeps_equal_prompts_fed_different_strengths_apart():
    model, a = gft_model(), prompts(1, 4, seed=8)
    ids, mask = a.expand(3, -1), torch.ones(3, 4, dtype=torch.long)
    beta = torch.tensor([0.5, 1.0, 0.5], dtype=torch.float64)
    logits = RowDecoder(model, ids, mask).prefill(beta=beta)
    assert model.stats.rows == 2  # the two β = 0.5 rows run once
    torch.testing.assert_close(logits[0], logits[2], rtol=0, atol=0)
    torch.testing.assert_close(logits[1], model(a[:, :0], 0.0, a)[0], rtol=0, atol=1e-12)
    assert not torch.allclose(logits[0], logits[1])


def test_bad_strengths_are_refused_by_name():
    model, x, c = gft_model(), prompts(2, 3, seed=9), torch.tensor([5, 9])
    with pytest.raises(ValueError, match=r"beta: expected a scalar, shape \(2,\) or one β per decode step \(2, 4\)"):
        model(x, 0.0, c, beta=torch.ones(2, 3))
    with pytest.raises(ValueError, match="beta: expected values in"):
        model(x, 0.0, c, beta=torch.zeros(2, 4))
    with pytest.raises(ValueError, match="scale: a guidance-free model takes its guidance as β = 1/s"):
        generate(model, x, guidance=0.5, max_new_tokens=2, eos_token_id=[])
    assert VOCAB > NULL
