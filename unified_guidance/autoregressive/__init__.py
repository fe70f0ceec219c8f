"""Autoregressive guidance: next-token logits of any transformers causal LM under CFG.

    import unified_guidance as ug
    ids = ug.autoregressive.generate(hf_model, input_ids, negative_input_ids=neg, guidance=1.5,
                                     max_new_tokens=64, do_sample=True, top_p=0.9)

Conditional and reference rows run as one forward over 2B rows with one KV cache.
"""

from .interop import GuidanceLogitsProcessor, custom_generate
from .loading import chat_prompts, load_causal_lm, packaged_gguf
from .loss import next_token_loss
from .mixing import PlausibilityMask
from .model import CausalLMModel
from .progress import anneal, linear_ramp
from .sample import generate
from .tokens import digits_token_lm

__all__ = [
    "CausalLMModel",
    "GuidanceLogitsProcessor",
    "PlausibilityMask",
    "anneal",
    "chat_prompts",
    "custom_generate",
    "digits_token_lm",
    "generate",
    "linear_ramp",
    "load_causal_lm",
    "next_token_loss",
    "packaged_gguf",
]
