"""transformers names the project relies on, resolved from the objects themselves.

transformers 5.24 renamed a causal LM's forward argument ``past_key_values`` to
``cache`` and the output attribute likewise (the old names still work until 5.40,
with a deprecation message on every first use). Which name a model takes is read
off its forward's signature, so models of both generations — and third-party
models that follow either — are driven without a warning.

:func:`quiet_loading` turns off the loading bars for a block: transformers' own switch
(``transformers.utils.logging.disable_progress_bar``) covers the weight-loading bar, but the
GGUF de-quantisation bar (``modeling_gguf_pytorch_utils``, 5.x) is a plain ``tqdm.auto`` bar
that no switch reaches, so for the block it is routed through the switchable one.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn

#: The forward keyword of the KV cache, newest first.
CACHE_KEYWORDS = ("cache", "past_key_values")


def forward_parameters(lm: nn.Module) -> frozenset[str]:
    """The keyword names of ``lm.forward`` (decorators that keep ``__wrapped__`` are seen
    through). Read it once per model, not per decode step."""
    forward = getattr(lm, "forward", None)
    if forward is None:
        return frozenset()
    return frozenset(inspect.signature(forward).parameters)


def cache_keyword(params: frozenset[str]) -> str | None:
    """The keyword under which a forward with these ``params`` takes its KV cache: ``"cache"``
    (5.24 on), ``"past_key_values"`` (earlier), or ``None`` for a model without one."""
    return next((name for name in CACHE_KEYWORDS if name in params), None)


def returned_cache(output: Any) -> Any:
    """The KV cache a forward returned, under either generation's attribute name.

    The new name is read first: on 5.24+ outputs, ``past_key_values`` is a property that
    logs a deprecation."""
    keys = output.keys() if hasattr(output, "keys") else ()
    for name in CACHE_KEYWORDS:
        if name in keys:
            return output[name]
    for name in CACHE_KEYWORDS:  # plain objects (a user's own model output)
        if name in getattr(output, "__dict__", {}):
            return getattr(output, name)
    return None


def new_dynamic_cache(config: Any) -> Any:
    """An empty ``DynamicCache`` laid out for ``config`` (sliding-window layers included, where
    the installed ``DynamicCache`` takes the config)."""
    from transformers import DynamicCache

    if "config" in inspect.signature(DynamicCache.__init__).parameters:
        return DynamicCache(config=config)
    return DynamicCache()


def cache_length(cache: Any) -> int:
    """Number of positions the cache holds."""
    return int(cache.get_seq_length())


def reorder_cache(cache: Any, index: Tensor) -> None:
    """Keep, reorder or repeat the cache's rows in place: row ``i`` becomes old row ``index[i]``."""
    cache.reorder_cache(index)


def cache_rows(cache: Any, index: Tensor) -> Any:
    """A new cache of the rows ``index`` of ``cache`` (kept, reordered, repeated); ``cache`` is unchanged."""
    import copy

    out = copy.deepcopy(cache)
    out.reorder_cache(index)
    return out


def keeps_last_logits(params: frozenset[str]) -> bool:
    """Whether a forward with these ``params`` computes the LM head for the last position only
    on request (``logits_to_keep``)."""
    return "logits_to_keep" in params


def special_token_tensors(generation_config: Any, input_ids: Tensor) -> tuple[Tensor, Tensor | None]:
    """``(eos ids (k,), pad id or None)`` of a generation config prepared by ``generate``.

    ``generate`` resolves the special tokens into private tensors before calling a
    ``custom_generate``; read those where present, else the public ids."""
    eos = getattr(generation_config, "_eos_token_tensor", None)
    pad = getattr(generation_config, "_pad_token_tensor", None)
    if eos is None and getattr(generation_config, "eos_token_id", None) is not None:
        eos = torch.as_tensor(generation_config.eos_token_id, device=input_ids.device)
    if pad is None and getattr(generation_config, "pad_token_id", None) is not None:
        pad = torch.as_tensor(generation_config.pad_token_id, device=input_ids.device)
    eos = eos.reshape(-1) if eos is not None else input_ids.new_zeros(0)
    return eos, pad


def builtin_guidance_processor() -> type:
    """The class of transformers' own ``guidance_scale`` processor (to refuse guiding twice)."""
    from transformers.generation.logits_process import UnbatchedClassifierFreeGuidanceLogitsProcessor

    return UnbatchedClassifierFreeGuidanceLogitsProcessor


def packed_query_heads(module: nn.Module, query: Tensor) -> int:
    """How many query heads transformers' SDPA attention folded into the query-length axis.

    For one new token under grouped-query attention with a mask, transformers reshapes the
    query ``(B, H, 1, d)`` to ``(B, H/g, g, d)`` (``pack_gqa``) instead of repeating the keys;
    the g "positions" are then g heads at the newest position. Returns g there, else 1.
    """
    groups = getattr(module, "num_key_value_groups", 1)
    heads = getattr(getattr(module, "config", None), "num_attention_heads", None)
    if isinstance(groups, int) and groups > 1 and heads == query.shape[1] * groups and query.shape[2] == groups:
        return groups
    return 1


def layer_output_names(module: nn.Module, output: tuple) -> tuple[str | None, ...] | None:
    """For a transformers decoder layer returning a tuple (older releases: ``(hidden_states, …)``),
    the input each element stands for: the first is the hidden states, the rest (attention
    weights, cache) none; ``None`` for modules of other libraries."""
    if type(module).__module__.split(".", 1)[0] != "transformers":
        return None
    return ("hidden_states", *([None] * (len(output) - 1)))


def conv1d_type() -> type | None:
    """transformers' ``Conv1D`` (GPT-2's layers: a linear layer whose weight is stored ``(in, out)``)."""
    try:
        from transformers.pytorch_utils import Conv1D
    except ImportError:
        return None
    return Conv1D


#: The module whose GGUF de-quantisation bar ignores transformers' progress-bar switch.
GGUF_LOADER = "transformers.modeling_gguf_pytorch_utils"


@contextmanager
def quiet_loading() -> Iterator[None]:
    """No transformers progress bars in the block ("Loading weights", "Converting and de-quantizing
    GGUF tensors..."); their state before is restored after. Log messages and errors are untouched."""
    from transformers.utils import logging as hf_logging

    was_on = hf_logging.is_progress_bar_enabled()
    try:
        gguf = importlib.import_module(GGUF_LOADER)
    except ImportError:  # a transformers without GGUF support: nothing to reroute
        gguf = None
    plain = getattr(gguf, "tqdm", None)
    hf_logging.disable_progress_bar()
    if plain is not None:
        gguf.tqdm = hf_logging.tqdm  # type: ignore[union-attr]
    try:
        yield
    finally:
        if plain is not None:
            gguf.tqdm = plain  # type: ignore[union-attr]
        if was_on:
            hf_logging.enable_progress_bar()
