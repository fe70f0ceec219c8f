"""Perturbed references for language models: a layer-skipped (or PAG) reference decoded with the
KV cache in the same batch as the prompt gives the tokens of the stateless computation."""

from __future__ import annotations

import pytest
import torch

from tests.autoregressive.ar_models import PAD, prompts, tiny_gpt2, tiny_llama
from unified_guidance.autoregressive import CausalLMModel, GuidanceLogitsProcessor, generate
from unified_guidance.guidance import Guidance, Reference
from unified_guidance.guidance.functional import cfg
from unified_guidance.perturb import Rows, pag, perturbed, slg

CASES = {
    "llama-skip": (tiny_llama, slg("layers.1")),
    "llama-pag": (tiny_llama, pag("layers.0.self_attn")),
    "gpt2-skip": (tiny_gpt2, slg("h.0")),
}


def _stateless(lm: CausalLMModel, prompt, negative, references, steps):
    """Greedy tokens from full forwards without a cache: c, and each reference (the negative prompt,
    or the prompt under a perturbation) at its scale: ĝ = c + Σ (cfg(c, r, w) − c)."""
    rows = prompt["input_ids"].shape[0] if isinstance(prompt, dict) else prompt.shape[0]
    ids = torch.empty(rows, 0, dtype=torch.long)
    for _ in range(steps):
        lp = lambda cond, ids=ids: torch.log_softmax(lm(ids, 0.0, cond), -1)  # noqa: E731
        c = lp(prompt)
        scores = c
        for scale, pert in references:
            if pert is None:
                r = lp(negative)
            else:
                with perturbed(lm, [(pert, Rows.all(rows))]):
                    r = lp(prompt)
            scores = scores + (cfg(c, r, torch.tensor(scale, dtype=c.dtype)) - c)
        ids = torch.cat([ids, scores.argmax(-1, keepdim=True)], 1)
    return ids


@pytest.mark.parametrize("case", CASES, ids=str)
def test_perturbed_reference_with_the_cache_equals_the_stateless_tokens(case):
    build, pert = CASES[case]
    lm = CausalLMModel(build(), pad_token_id=PAD)
    prompt, negative = prompts(3, 5), prompts(3, 4, seed=7)
    g = Guidance(scale=2.0, also=[Reference(pert, scale=3.0)])
    out = generate(lm, prompt, negative_input_ids=negative, guidance=g, max_new_tokens=6, eos_token_id=[])
    assert lm.stats.rows == 3 * 3 * 6  # one forward of 3 blocks × 3 rows per token
    want = _stateless(lm, prompt, negative, [(2.0, None), (3.0, pert)], 6)
    assert torch.equal(out[:, prompt.shape[1] :], want)


def test_layer_skipped_amateur_alone_and_left_padding():
    lm = CausalLMModel(tiny_llama(), pad_token_id=PAD)
    prompt = prompts(2, 6)
    mask = torch.ones_like(prompt)
    mask[1, :2] = 0  # the second prompt is shorter, left-padded
    prompt = prompt.masked_fill(mask == 0, PAD)
    out = generate(lm, prompt, attention_mask=mask, guidance=Guidance(scale=2.5, reference=slg("layers.1")),
                   max_new_tokens=5, eos_token_id=[])  # fmt: skip
    cond = {"input_ids": prompt, "attention_mask": mask}
    want = _stateless(lm, cond, None, [(2.5, slg("layers.1"))], 5)
    assert torch.equal(out[:, prompt.shape[1] :], want)


def test_attention_perturbations_need_sdpa_and_other_decoders_refuse_them():
    hf = tiny_llama()
    hf.config._attn_implementation = "eager"
    lm = CausalLMModel(hf, pad_token_id=PAD)
    g = Guidance(scale=1.0, also=[Reference(pag("self_attn"), 2.0)])
    with pytest.raises(ValueError, match=r"ran without calling torch\.nn\.functional\.scaled_dot_product_attention"):
        generate(lm, prompts(1, 3), guidance=g, max_new_tokens=2)
    with pytest.raises(ValueError, match="num_beams: beam search takes one reference"):
        generate(CausalLMModel(tiny_llama(), pad_token_id=PAD), prompts(1, 3), guidance=g, num_beams=2)
    with pytest.raises(ValueError, match="the logits processor runs one reference"):
        GuidanceLogitsProcessor(tiny_llama(), g)


def test_ended_rows_leave_every_block_including_the_perturbed_one():
    """With EOS reached at different steps, dropping ended rows (and their ∅ and perturbed
    partners) gives the tokens of the loop that keeps every row, with fewer rows run."""
    from transformers import LogitsProcessorList, StoppingCriteriaList

    from unified_guidance.autoregressive.mixing import Mixing
    from unified_guidance.autoregressive.progress import decode_plan
    from unified_guidance.autoregressive.sample import decode
    from unified_guidance.autoregressive.spec import DecodeSpec

    g = Guidance(scale=2.0, also=[Reference(slg("layers.1"), scale=2.0)])
    prompt, negative = prompts(4, 5), prompts(4, 3, seed=5)
    plain = CausalLMModel(tiny_llama(), pad_token_id=PAD)
    first = generate(plain, prompt, negative_input_ids=negative, guidance=g, max_new_tokens=8, eos_token_id=[])
    eos = int(first[0, prompt.shape[1] + 2])  # row 0 ends at its third token, others maybe later or never
    runs = {}
    for drop in (False, True):
        lm = CausalLMModel(tiny_llama(), pad_token_id=PAD)
        spec = DecodeSpec(
            mixing=Mixing(g), plan=decode_plan(g, 8),
            processors=LogitsProcessorList([]), stopping=StoppingCriteriaList([]), eos=torch.tensor([eos]),
            pad_token_id=PAD, drop_finished=drop,
        )  # fmt: skip
        runs[drop] = (
            decode(lm, (prompt, torch.ones_like(prompt)), (negative, torch.ones_like(negative)), spec).samples,
            lm,
        )
    assert torch.equal(runs[True][0], runs[False][0])
    assert runs[True][1].stats.rows < runs[False][1].stats.rows


def test_nag_on_a_language_model_is_refused_by_name():
    from unified_guidance.perturb import nag

    lm = CausalLMModel(tiny_llama(), pad_token_id=PAD)
    g = Guidance(scale=1.0, also=[Reference(nag("layers.0.self_attn"), scale=3.0)])
    with pytest.raises(ValueError, match=r"NAG acts inside the conditional forward .* causal LMs are not covered"):
        generate(lm, prompts(2, 4), guidance=g, max_new_tokens=2, eos_token_id=[])
