"""Both generations of transformers' KV-cache names drive the same decoder, silently.

transformers 5.24 renamed a causal LM's forward argument and output attribute
``past_key_values`` to ``cache``. Whichever generation is installed, the two thin
subclasses below present the real GPT-2 under each generation's names (weights
shared), and the tokens must come out identical, with no deprecation logged.
"""

import logging
import warnings
from dataclasses import dataclass
from typing import Any

import pytest
import torch
from ar_models import PAD, prompts, tiny_gpt2
from transformers import GPT2LMHeadModel

import unified_guidance as ug
from unified_guidance.autoregressive import CausalLMModel
from unified_guidance.compat import transformers as hf

INSTALLED = hf.cache_keyword(hf.forward_parameters(tiny_gpt2()))


@dataclass
class NewOutput:  # 5.24 on
    logits: torch.Tensor
    cache: Any


@dataclass
class OldOutput:  # up to 5.23
    logits: torch.Tensor
    past_key_values: Any


class CacheNamed(GPT2LMHeadModel):
    """GPT-2 whose forward takes and returns ``cache``."""

    def forward(self, input_ids=None, attention_mask=None, position_ids=None, cache=None, use_cache=None, **kw):
        out = super().forward(
            input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            use_cache=use_cache,
            **{INSTALLED: cache},
            **kw,
        )
        return NewOutput(out.logits, hf.returned_cache(out))


class PastNamed(GPT2LMHeadModel):
    """GPT-2 whose forward takes and returns ``past_key_values``."""

    def forward(
        self, input_ids=None, attention_mask=None, position_ids=None, past_key_values=None, use_cache=None, **kw
    ):
        out = super().forward(
            input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            use_cache=use_cache,
            **{INSTALLED: past_key_values},
            **kw,
        )
        return OldOutput(out.logits, hf.returned_cache(out))


def renamed(cls: type, base: GPT2LMHeadModel) -> GPT2LMHeadModel:
    lm = cls(base.config).to(torch.float64).eval()
    lm.load_state_dict(base.state_dict())
    return lm


@pytest.fixture
def transformers_log():
    """Every message transformers logs or warns (``warning_once``'s cache emptied, so nothing is hidden)."""
    records: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: records.append(record.getMessage())
    root = logging.getLogger("transformers")
    logging.Logger.warning_once.cache_clear()
    root.addHandler(handler)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield lambda: records + [str(w.message) for w in caught]
    root.removeHandler(handler)


def test_the_cache_keyword_is_read_off_the_forward():
    base = tiny_gpt2()
    assert hf.cache_keyword(hf.forward_parameters(renamed(CacheNamed, base))) == "cache"
    assert hf.cache_keyword(hf.forward_parameters(renamed(PastNamed, base))) == "past_key_values"
    assert INSTALLED in ("cache", "past_key_values")


@pytest.mark.parametrize("do_sample", [False, True])
def test_both_generations_decode_identical_tokens_without_a_deprecation(transformers_log, do_sample):
    base = tiny_gpt2()
    ids, neg = prompts(3, 5), prompts(3, 3, seed=2)
    out = []
    for lm in (base, renamed(CacheNamed, base), renamed(PastNamed, base)):
        model = CausalLMModel(lm, pad_token_id=PAD)
        torch.manual_seed(0)
        out.append(
            ug.autoregressive.generate(
                model, ids, negative_input_ids=neg, guidance=2.0, max_new_tokens=8, do_sample=do_sample, eos_token_id=[]
            )
        )
        assert model.stats.calls == 8  # one prefill and 7 cached steps: the cache was taken and returned
    torch.testing.assert_close(out[1], out[0], rtol=0, atol=0)
    torch.testing.assert_close(out[2], out[0], rtol=0, atol=0)
    assert [m for m in transformers_log() if "deprecat" in m.lower()] == []


def test_beam_reordering_works_on_either_generation():
    base = tiny_gpt2()
    ids = prompts(2, 4)
    out = [
        ug.autoregressive.generate(
            CausalLMModel(lm, pad_token_id=PAD), ids, guidance=1.5, max_new_tokens=6, num_beams=3, eos_token_id=[]
        )
        for lm in (base, renamed(CacheNamed, base), renamed(PastNamed, base))
    ]
    torch.testing.assert_close(out[1], out[0], rtol=0, atol=0)
    torch.testing.assert_close(out[2], out[0], rtol=0, atol=0)


def test_a_forward_without_a_cache_argument_is_refused():
    class NoCache(torch.nn.Module):
        config = tiny_gpt2().config

        def forward(self, input_ids, attention_mask=None):
            return input_ids

    with pytest.raises(ValueError, match=r"model: expected a transformers causal LM with a KV cache .*got NoCache"):
        CausalLMModel(NoCache())
