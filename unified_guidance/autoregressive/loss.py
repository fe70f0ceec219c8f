"""Next-token training with condition dropout, and class-conditional sampling of token sequences and images."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..core.conditions import drop_condition
from ..guidance.engine import Guidance
from ..schedules.scale import Schedule
from .model import CausalLMModel
from .sample import generate
from .tokens import DigitTokens, SequenceTokens


def next_token_loss(lm: nn.Module, cond_tokens: Tensor, tokens: Tensor) -> Tensor:
    """Mean cross-entropy of ``tokens`` ``(B, T)`` after the condition token ``(B,)``:

        L = −1/(B·T) Σ_b Σ_t log p(x_t | c_b, x_<t)

    The condition itself is not predicted (it is given, or ∅).
    """
    inputs = teacher_forced(cond_tokens, tokens)
    return cross_entropy(lm(input_ids=inputs, attention_mask=torch.ones_like(inputs)).logits, tokens)


def cross_entropy(logits: Tensor, tokens: Tensor) -> Tensor:
    """Mean CE of ``tokens`` ``(B, T)`` under ``logits`` ``(B, T, V)``, in at least float32."""
    logits = logits.to(torch.promote_types(logits.dtype, torch.float32))
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tokens.reshape(-1))


def teacher_forced(cond_tokens: Tensor, tokens: Tensor) -> Tensor:
    """The inputs ``(B, T)`` whose next-token logits predict ``tokens`` ``(B, T)``: the condition
    token ``(B,)``, then ``tokens`` but the last."""
    return torch.cat([cond_tokens[:, None], tokens[:, :-1]], dim=1)


def dropped_class_tokens(
    labels: Tensor, layout: SequenceTokens, p_uncond: float, generator: torch.Generator | None = None
) -> Tensor:
    """Class tokens with each replaced by the null token with probability ``p_uncond``
    (Ho & Salimans, arXiv 2207.12598): one network learns p(x|c) and p(x|∅)."""
    cond, _ = drop_condition(layout.class_tokens(labels), layout.null_token, p_uncond, generator=generator)
    return cond


@torch.no_grad()
def sample_tokens(
    model: CausalLMModel,
    labels: Tensor,
    guidance: Guidance | Schedule | float,
    *,
    layout: SequenceTokens,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Draw content tokens ``(B, layout.length)`` of classes ``labels`` ``(B,)`` under guidance.

    The class token is the prompt, the null token the reference (shared by the batch; a model
    with ∅ takes it as its own, so a guidance-free one folds the reference: one row per sample);
    ``layout.length`` tokens are sampled with the class and null tokens suppressed.
    """
    from transformers import LogitsProcessorList, SuppressTokensLogitsProcessor

    device = model.device
    own_null = model.null_spec == layout.null_token  # the model's ∅ is the layout's null token
    prompt = layout.class_tokens(labels.to(device))[:, None]
    suppress = SuppressTokensLogitsProcessor(layout.non_content_tokens(), device=str(device))
    ids = generate(
        model,
        prompt,
        negative_input_ids=None if own_null else torch.full((1, 1), layout.null_token, device=device),
        guidance=guidance,
        max_new_tokens=layout.length,
        do_sample=True,
        eos_token_id=[],
        pad_token_id=layout.null_token,
        logits_processor=LogitsProcessorList([suppress]),
        generator=generator,
    )
    return ids[:, 1:]


def sample_digits(
    model: CausalLMModel,
    labels: Tensor,
    guidance: Guidance | Schedule | float,
    *,
    layout: DigitTokens | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Draw images ``(B, 1, 8, 8)`` in [−1, 1] of classes ``labels`` ``(B,)`` under guidance
    (:func:`sample_tokens` on the digits' layout: 64 pixel tokens after the class token)."""
    layout = layout or DigitTokens()
    return layout.images(sample_tokens(model, labels, guidance, layout=layout, generator=generator))
