"""Autoregressive guidance: next-token logits of any transformers causal LM under CFG.

    import unified_guidance as ug
    ids = ug.autoregressive.generate(hf_model, input_ids, negative_input_ids=neg, guidance=1.5,
                                     max_new_tokens=64, do_sample=True, top_p=0.9)

Conditional and reference rows run as one forward over 2B rows with one KV cache.
"""

from .beam import beam_search
from .decoding import RowDecoder, stack_prompts
from .interop import GuidanceLogitsProcessor, custom_generate
from .loading import LoadedLM, chat_prompts, load_causal_lm, packaged_gguf
from .loss import dropped_class_tokens, next_token_loss, sample_digits
from .mixing import Mixing, PlausibilityMask, guided_scores, plausibility_mask
from .model import CausalLMModel, as_model, left_pad, positions_from_mask
from .progress import anneal, decode_plan, linear_ramp, token_progress
from .sample import decode, generate, reference_prompt
from .spec import DecodeSpec
from .tokens import DigitTokens, digits_token_lm

__all__ = [
    "CausalLMModel",
    "DecodeSpec",
    "DigitTokens",
    "GuidanceLogitsProcessor",
    "LoadedLM",
    "Mixing",
    "PlausibilityMask",
    "RowDecoder",
    "anneal",
    "as_model",
    "beam_search",
    "chat_prompts",
    "custom_generate",
    "decode",
    "decode_plan",
    "digits_token_lm",
    "dropped_class_tokens",
    "generate",
    "guided_scores",
    "left_pad",
    "linear_ramp",
    "load_causal_lm",
    "next_token_loss",
    "packaged_gguf",
    "plausibility_mask",
    "positions_from_mask",
    "reference_prompt",
    "sample_digits",
    "stack_prompts",
    "token_progress",
]
