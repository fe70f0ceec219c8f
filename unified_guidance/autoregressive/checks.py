"""Checks of token-model input against the model: vocabulary, positions, special tokens.

A token id outside the vocabulary, a pad id the embedding cannot look up, or more
positions than a model with learned absolute positions has, surface in torch as
``IndexError: index out of range in self`` from deep inside an embedding; these
checks say instead which argument was wrong and what the model allows. Each runs
once per generation (one read-back of the prompts' min/max).
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from .model import CausalLMModel


def vocab_size(lm: CausalLMModel) -> int | None:
    """Rows of the model's input embedding (transformers' ``get_input_embeddings``), else ``config.vocab_size``."""
    get = getattr(lm.lm, "get_input_embeddings", None)
    emb = get() if callable(get) else None
    if isinstance(emb, nn.Embedding):
        return int(emb.num_embeddings)
    size = getattr(getattr(lm.lm, "config", None), "vocab_size", None)
    return int(size) if isinstance(size, int) else None


def learned_positions(lm: CausalLMModel) -> int | None:
    """The number of positions of a model with learned absolute position embeddings (GPT-2's
    ``n_positions``), ``None`` for rotary/relative ones (Llama), which run past their nominal length."""
    config = getattr(lm.lm, "config", None)
    for key in ("n_positions", "max_position_embeddings"):
        n = getattr(config, key, None)
        if not isinstance(n, int):
            continue
        sizes = {m.num_embeddings for m in lm.lm.modules() if isinstance(m, nn.Embedding)}
        if n in sizes:
            return n
    return None


def check_token_ids(name: str, ids: Tensor, mask: Tensor | None, vocab: int | None) -> None:
    """Every real (unmasked) token id of ``ids`` lies in ``[0, vocab)``."""
    if vocab is None or ids.numel() == 0:
        return
    real = ids if mask is None else ids[mask.bool()]
    lo, hi = int(real.min()), int(real.max())
    if lo < 0 or hi >= vocab:
        raise ValueError(f"{name}: expected token ids in [0, {vocab - 1}] (the model's vocabulary), got [{lo}, {hi}]")


def check_special_tokens(eos: Tensor, pad_token_id: int, vocab: int | None) -> None:
    """The end-of-sequence ids and the pad id (fed to the model once a row has finished) are in the vocabulary."""
    if vocab is None:
        return
    if not 0 <= pad_token_id < vocab:
        raise ValueError(
            f"pad_token_id: expected an id in [0, {vocab - 1}] (the model's vocabulary), got {pad_token_id}"
        )
    bad = [int(e) for e in eos.tolist() if not 0 <= int(e) < vocab]
    if bad:
        raise ValueError(f"eos_token_id: expected ids in [0, {vocab - 1}] (the model's vocabulary), got {bad}")


def check_positions(lm: CausalLMModel, prompts: list[tuple[str, Tensor]], max_new_tokens: int) -> None:
    """Each row's real tokens plus ``max_new_tokens`` fit the model's learned positions."""
    positions = learned_positions(lm)
    if positions is None:
        return
    for name, mask in prompts:
        longest = int(mask.sum(-1).max())
        if longest + max_new_tokens > positions:
            raise ValueError(
                f"max_new_tokens: {name} has up to {longest} tokens, so at most {positions - longest} new ones fit "
                f"the model's {positions} positions; got {max_new_tokens}"
            )


def check_prompts(
    lm: CausalLMModel, prompt: tuple[Tensor, Tensor], ref: tuple[Tensor, Tensor], max_new_tokens: int | None
) -> None:
    """The prompt and the reference prompt against the model's vocabulary (and positions)."""
    vocab = vocab_size(lm)
    check_token_ids("input_ids", prompt[0], prompt[1], vocab)
    check_token_ids("negative_input_ids", ref[0], ref[1], vocab)
    if max_new_tokens is not None:
        check_positions(lm, [("input_ids", prompt[1]), ("negative_input_ids", ref[1])], max_new_tokens)


def check_scores(scores: Any, rows: int, vocab: int) -> None:
    """A processor's ``scores`` are ``(rows, V)`` floats with the model's logit width ``V``."""
    if not isinstance(scores, Tensor) or not scores.is_floating_point() or tuple(scores.shape) != (rows, vocab):
        got = f"shape {tuple(scores.shape)} {scores.dtype}" if isinstance(scores, Tensor) else type(scores).__name__
        raise ValueError(
            f"scores: expected floats of shape ({rows}, {vocab}) (rows of input_ids, the model's logits), got {got}"
        )
