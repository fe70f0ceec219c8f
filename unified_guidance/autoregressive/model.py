"""Any Hugging Face causal language model as a :class:`~unified_guidance.core.ConditionalModel`.

The condition of a token model is its prompt: a text prompt, a class token, an
instruction. The reference branch of guidance is another prompt: a negative
prompt, the prompt with the condition removed, or a null token. So

    model(tokens, t, cond) = logits of the next token after ``cond ++ tokens``

with ``cond`` a (left-padded) prompt and ``tokens`` the continuation so far. This
stateless call is the oracle; the decode loop (:mod:`.sample`) computes the same
logits incrementally with one KV cache (:class:`RowDecoder`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from ..compat import transformers as hf
from ..core.conditions import Cond, NullSpec
from ..core.model import ConditionalModel
from ..core.shapes import check_strength, time_dtype
from ..core.spaces import TOKEN_SPACES
from ..networks.embedding import StrengthEmbedding
from .products import PRODUCTS, few_row_products, product_layers, routed_forward


def positions_from_mask(mask: Tensor) -> Tensor:
    """Position ids of left-padded rows: ``cumsum(mask) − 1``, padding at 0. ``(R, L) -> (R, L)``.

    Without them a left-padded prompt would start at position ``#pad`` instead of 0, and
    its tokens would differ from the unpadded prompt's (the trap of transformers' built-in
    guidance, which feeds the negative prompt without position ids).
    """
    return (mask.long().cumsum(-1) - 1).clamp(min=0)


def position_strengths(beta: Tensor, prompt_length: int, tokens: int) -> Tensor:
    """β of every position of ``cond ++ tokens`` ``(B, L + T)`` from β per row ``(B,)`` or per decode
    step ``(B, T + 1)``: the prompt's positions take step 0's, token k−1 step k's (as the KV cache fed them)."""
    steps = beta[:, None].expand(-1, tokens + 1) if beta.ndim == 1 else beta
    return torch.cat([steps[:, :1].expand(-1, prompt_length), steps[:, 1:]], dim=1)


def left_pad(ids: Tensor, mask: Tensor, length: int, pad_token_id: int) -> tuple[Tensor, Tensor]:
    """Left-pad ``ids``/``mask`` ``(R, L)`` to ``(R, length)`` with ``pad_token_id`` and mask 0."""
    extra = length - ids.shape[1]
    if extra < 0:
        raise ValueError(f"length: expected at least the prompt length {ids.shape[1]}, got {length}")
    if extra == 0:
        return ids, mask
    return (
        torch.cat([ids.new_full((ids.shape[0], extra), pad_token_id), ids], dim=1),
        torch.cat([mask.new_zeros((mask.shape[0], extra)), mask], dim=1),
    )


def check_prompt(name: str, ids: Any, mask: Any = None, *, mask_name: str = "attention_mask") -> tuple[Tensor, Tensor]:
    """Validate a prompt ``(B, L)`` of token ids and its mask (all ones when ``None``)."""
    if not isinstance(ids, Tensor) or ids.ndim != 2 or ids.dtype not in (torch.long, torch.int):
        got = f"shape {tuple(ids.shape)} dtype {ids.dtype}" if isinstance(ids, Tensor) else type(ids).__name__
        raise ValueError(f"{name}: expected integer token ids of shape (batch, length), got {got}")
    if ids.shape[0] == 0 or ids.shape[1] == 0:
        raise ValueError(f"{name}: expected at least one row and one token, got shape {tuple(ids.shape)}")
    if mask is None:
        return ids.long(), torch.ones_like(ids, dtype=torch.long)
    if not isinstance(mask, Tensor) or mask.shape != ids.shape:
        got = str(tuple(mask.shape)) if isinstance(mask, Tensor) else type(mask).__name__
        raise ValueError(f"{mask_name}: expected the shape of {name} {tuple(ids.shape)}, got {got}")
    mask = mask.long()
    if bool((mask[:, -1] == 0).any()):
        raise ValueError(f"{mask_name}: expected left padding (last column all ones); got right-padded rows")
    if bool((mask.sum(-1) == 0).any()):
        raise ValueError(f"{mask_name}: expected at least one real token per row, got an empty row")
    return ids.long(), mask


def check_has_cache(lm: nn.Module) -> str:
    """Raise unless ``lm`` is a causal LM whose forward takes and returns a KV cache;
    return the keyword it takes it under (``cache`` or ``past_key_values``)."""
    keyword = hf.cache_keyword(hf.forward_parameters(lm))
    if keyword is None or getattr(lm, "config", None) is None:
        raise ValueError(
            f"model: expected a transformers causal LM with a KV cache (forward(..., cache=...) or "
            f"forward(..., past_key_values=...)), got {type(lm).__name__}"
        )
    if getattr(lm.config, "is_encoder_decoder", False):
        raise ValueError(f"model: expected a decoder-only causal LM, got the encoder-decoder {type(lm).__name__}")
    return keyword


class CausalLMModel(ConditionalModel):
    """``(tokens, t, cond) -> next-token logits`` for any ``AutoModelForCausalLM``, used as it is.

    Args:
        lm: the transformers causal LM (GPT-2, Llama, SmolLM2 …), not modified.
        space: ``"logits"`` (raw) or ``"logprobs"`` (log-softmax) for :meth:`predict`.
        null_cond: ∅ of a class-conditional token model (the null token id), so that
            ``cond=None`` means the null prompt; ``None`` for text models.
        pad_token_id: the id written into padding (never attended to).
        products: how the linear layers multiply a few rows: ``"auto"`` (where it reads the
            weights once — CPU, 1–128 rows, large weights — oneDNN's product, or for an
            ``nn.Linear`` at 2–4 rows the weight as the left operand; see :mod:`.products`),
            ``"model"`` (the model's own).
        guidance_input: take the guidance strength β = 1/s (a guidance-free model; the β embedding
            :attr:`strength` is this adapter's, the LM stays as it is; see the module docstring).

    ``cond`` is a prompt ``(B, L)``, a dict ``{"input_ids", "attention_mask"}`` of a
    left-padded prompt, or class tokens ``(B,)``; ``tokens`` ``(B, T)`` (T ≥ 0) the
    continuation; ``t`` (progress) is not used by the network. Every forward, cached or
    not, is counted in :attr:`stats`.
    """

    def __init__(
        self,
        lm: nn.Module,
        *,
        space: str = "logits",
        null_cond: NullSpec | None = None,
        pad_token_id: int = 0,
        products: str = "auto",
        guidance_input: bool = False,
    ) -> None:
        if space not in TOKEN_SPACES:
            raise ValueError(f"space: expected one of {', '.join(TOKEN_SPACES)}, got {space!r}")
        if products not in PRODUCTS:
            raise ValueError(f"products: expected one of {', '.join(PRODUCTS)}, got {products!r}")
        self._cache_keyword = check_has_cache(lm)
        super().__init__(space=space, null_cond=null_cond)
        self.lm = lm
        self.pad_token_id = int(pad_token_id)
        self._keep_last = hf.keeps_last_logits(hf.forward_parameters(lm))
        self.products = products
        # found once; a tuple, so the layers are not registered as a second copy of the submodules
        layers = product_layers(lm) if products == "auto" else ()
        self._layers = tuple((layer, routed_forward(layer)) for layer in layers)
        self.strength: StrengthEmbedding | None = None
        if guidance_input:
            embedding = self.input_embeddings
            width, weight = embedding.embedding_dim, embedding.weight
            self.strength = StrengthEmbedding(width).to(device=weight.device, dtype=weight.dtype)

    @property
    def guidance_input(self) -> bool:
        return self.strength is not None

    def check_beta(self, beta: Tensor | float, x: Tensor) -> Tensor:
        """β ``(B,)`` or per decode step ``(B, T + 1)`` in (0, 1], in the time dtype of the LM."""
        probe = lambda rows: x.new_empty(rows, dtype=self.input_embeddings.weight.dtype)  # noqa: E731
        if not isinstance(beta, Tensor) or beta.ndim < 2:
            return check_strength(beta, probe(x.shape[0]))
        steps = (x.shape[0], x.shape[1] + 1)
        if beta.shape != steps:
            raise ValueError(f"beta: expected a scalar, shape ({steps[0]},) or one β per decode step {steps}, "
                             f"got shape {tuple(beta.shape)}")  # fmt: skip
        return check_strength(beta.reshape(-1), probe(beta.numel())).reshape(steps)

    def predict(self, x: Tensor, t: Tensor, cond: Cond, beta: Tensor | None = None) -> Tensor:
        ids, mask = prompt_of(cond)
        if beta is not None:
            beta = position_strengths(beta, ids.shape[1], x.shape[1])
        ids = torch.cat([ids, x.long()], dim=1)
        mask = torch.cat([mask, torch.ones_like(x, dtype=torch.long)], dim=1)
        logits = self._forward(ids, mask, None, beta)[0]
        return torch.log_softmax(logits, dim=-1) if self.space == "logprobs" else logits

    def step(self, ids: Tensor, mask: Tensor, cache: Any, beta: Tensor | None = None) -> tuple[Tensor, Any]:
        """One cached forward: ``ids`` ``(R, T)`` are the newest tokens, ``mask`` ``(R, past + T)``
        the full attention mask, ``beta`` ``(R,)`` the strength they are fed with (a guidance-free
        model; ``None``: 1). Returns the last position's logits ``(R, V)`` and the cache."""
        self._calls += 1
        self._rows += ids.shape[0]
        return self._forward(ids, mask, cache, None if beta is None else beta[:, None].expand(ids.shape))

    def inputs(self, ids: Tensor, beta: Tensor | None = None) -> dict[str, Tensor]:
        """The LM's input for ``ids`` ``(R, P)`` at strengths ``beta`` ``(R, P)`` (one per position):
        ``input_ids``, or for a guidance-free model ``inputs_embeds`` = E[ids] + e(β) − e(1)."""
        if beta is None or self.strength is None:
            return {"input_ids": ids}
        b = beta.to(device=ids.device, dtype=time_dtype(self.input_embeddings.weight.dtype))
        values, index = torch.unique(torch.cat([b.reshape(-1), b.new_ones(1)]), return_inverse=True)
        e = self.strength(values)[index]  # each distinct β embedded once (a row's positions share theirs)
        shift = (e[:-1] - e[-1:]).reshape(*b.shape, -1)  # exactly 0 at β = 1
        embeds = self.input_embeddings(ids)
        return {"inputs_embeds": embeds + shift.to(embeds.dtype)}

    @property
    def input_embeddings(self) -> nn.Embedding:
        """The LM's token embedding (transformers' ``get_input_embeddings``)."""
        lm: Any = self.lm
        return lm.get_input_embeddings()

    def _forward(self, ids: Tensor, mask: Tensor, cache: Any, beta: Tensor | None = None) -> tuple[Tensor, Any]:
        kwargs: dict[str, Any] = {self._cache_keyword: cache}
        if self._keep_last:
            kwargs["logits_to_keep"] = 1
        positions = positions_from_mask(mask)[:, -ids.shape[1] :]
        with few_row_products(self._layers):
            out = self.lm(
                **self.inputs(ids, beta),
                # Without padding the plain causal mask is the same and lets attention take its fast path.
                attention_mask=None if bool(mask.all()) else mask,
                position_ids=positions,
                use_cache=cache is not None,
                **kwargs,
            )
        logits = out.logits[:, -1]
        # Mix in at least float32 (bf16/fp16 logits lose the small gaps guidance amplifies).
        logits = logits.to(torch.promote_types(logits.dtype, torch.float32))
        return logits, hf.returned_cache(out) if cache is not None else None

    @property
    def device(self) -> torch.device:
        return next(self.lm.parameters()).device


def prompt_of(cond: Cond) -> tuple[Tensor, Tensor]:
    """``(ids, mask)`` of a prompt given as ids ``(B, L)``, class tokens ``(B,)`` or a dict."""
    if isinstance(cond, Mapping):
        return check_prompt("cond['input_ids']", cond["input_ids"], cond.get("attention_mask"))
    if isinstance(cond, Tensor) and cond.ndim == 1:
        cond = cond[:, None]
    return check_prompt("cond", cond)


def as_model(model: nn.Module) -> CausalLMModel:
    """Accept a :class:`CausalLMModel` or a bare transformers causal LM (wrapped, not modified)."""
    if isinstance(model, CausalLMModel):
        return model
    if isinstance(model, ConditionalModel):
        raise TypeError(f"model: expected a CausalLMModel or a transformers causal LM, got {type(model).__name__}")
    pad = getattr(getattr(model, "generation_config", None), "pad_token_id", None)
    return CausalLMModel(model, pad_token_id=pad if isinstance(pad, int) else 0)
