"""Entry points for the transformers ecosystem: ``custom_generate`` and a ``LogitsProcessor``.

* :func:`custom_generate`: pass it as ``model.generate(..., custom_generate=custom_generate,
  guidance=2.0, negative_input_ids=neg)``; transformers prepares the inputs, processors,
  warpers and stopping criteria, and our one-cache two-branch loop decodes
  (greedy or sampling; ``num_return_sequences`` works; beams: use :func:`~.sample.generate`).
* :class:`GuidanceLogitsProcessor`: for engines that accept only logits processors. A
  processor sees nothing but ``(input_ids, scores)``, so it must run the reference
  branch as its own forward (as transformers' built-in does); unlike the built-in it
  gives the negative prompt position ids, broadcasts one negative prompt, follows
  schedules over progress, and tracks each row's identity (its own reference prompt)
  from call to call, so its reference cache stays right under beam search.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch
from torch import Tensor, nn

from ..compat import transformers as hf
from ..guidance.spec import Guidance, as_guidance
from ..schedules.scale import Constant, Schedule
from .checks import check_prompts, check_scores
from .decoding import RowDecoder
from .mixing import Mixing, guided_scores, with_plausibility
from .model import as_model, check_prompt
from .progress import decode_plan
from .sample import decode, reference_prompt
from .spec import DecodeSpec

try:  # the base class only; the processor works as a plain callable too
    from transformers import LogitsProcessor as _Base
except ImportError:  # pragma: no cover - transformers is a dependency
    _Base = object  # type: ignore[assignment,misc]


def _expand_rows(t: Tensor | None, rows: int, name: str) -> Tensor | None:
    """Repeat a per-prompt tensor for prompts that transformers expanded (beams, return sequences)."""
    if t is None or t.shape[0] in (1, rows):
        return t
    if rows % t.shape[0]:
        raise ValueError(f"{name}: expected batch size 1 or a divisor of {rows} (the expanded batch), got {t.shape[0]}")
    return t.repeat_interleave(rows // t.shape[0], 0)


def reference_identity(ids: Tensor, mask: Tensor) -> Tensor:
    """For each row of a reference prompt ``(R, Lr)``, the first row with the same prompt ``(R,)``."""
    key = torch.cat([ids * mask, mask], dim=1)
    same = (key[:, None, :] == key[None, :, :]).all(-1)
    return same.float().argmax(-1)


class GuidanceLogitsProcessor(_Base):
    """Logit guidance as a transformers ``LogitsProcessor``: ``(input_ids, scores) -> guided scores``.

    Args:
        model: the same causal LM that produces ``scores`` (or its :class:`~.model.CausalLMModel`).
        guidance: scale, schedule over progress or :class:`Guidance`.
        negative_input_ids, negative_attention_mask: the reference prompt ``(B or 1, Lr)``;
            default: each prompt's last token (or the model's null token).
        max_new_tokens: needed for schedules that vary over progress.
        space, plausibility: as in :func:`~.sample.generate`.
    """

    def __init__(
        self,
        model: nn.Module,
        guidance: Guidance | Schedule | float,
        *,
        negative_input_ids: Tensor | None = None,
        negative_attention_mask: Tensor | None = None,
        max_new_tokens: int | None = None,
        space: str = "logprobs",
        plausibility: float | None = None,
    ) -> None:
        self.lm = as_model(model)
        g = with_plausibility(as_guidance(guidance), plausibility)
        self.mixing = Mixing(g, space)
        if len(g.references) > 1 or g.references[0].source is not None:
            raise ValueError(
                "guidance: the logits processor runs one reference (∅ or the negative prompt); decode perturbed "
                "or further references with unified_guidance.autoregressive.generate"
            )
        if max_new_tokens is None and not isinstance(g.references[0].schedule, Constant):
            raise ValueError("max_new_tokens: a schedule over progress needs the number of new tokens")
        self.plan = decode_plan(g, max_new_tokens or 1)
        self._until = self.plan.unused_from(0)  # the reference branch stops running at this token
        self.negative = (negative_input_ids, negative_attention_mask)
        self._decoder: RowDecoder | None = None
        self._history: Tensor | None = None
        self._prompt_length = 0
        self._state: Any = None
        self._parent: Tensor | None = None
        self._identity: Tensor | None = None

    @torch.no_grad()
    def __call__(self, input_ids: Tensor, scores: Tensor) -> Tensor:
        step = self._advance(input_ids)
        index = min(step, len(self.plan) - 1)
        reference = None
        if self._decoder is not None and index < self._until:
            reference = self._reference_logits(input_ids)
            check_scores(scores, input_ids.shape[0], reference.shape[-1])
        else:
            self._decoder = None  # the scale stays 1: stop running the reference branch
        dtype = torch.promote_types(scores.dtype, reference.dtype if reference is not None else scores.dtype)
        scale = self.plan.scales[index, 0].to(dtype)
        ref = None if reference is None else reference.to(dtype)
        out, states = guided_scores(
            self.mixing, scores.to(dtype), [ref], [scale], self.plan.taus[index], [self._state], self.plan[index]
        )
        self._state = states[0]
        self._history = input_ids
        return out

    def _advance(self, input_ids: Tensor) -> int:
        """The index of the token being chosen; (re)starts the reference branch on a new generation."""
        self._parent = self._parents(input_ids)
        if self._parent is None:  # not a continuation of the previous call: a new generation
            input_ids = check_prompt("input_ids", input_ids)[0]
            self._prompt_length, self._state = input_ids.shape[1], None
            neg, neg_mask = self.negative
            rows = input_ids.shape[0]
            ref = reference_prompt(
                self.lm,
                input_ids,
                torch.ones_like(input_ids),
                _expand_rows(neg, rows, "negative_input_ids"),
                _expand_rows(neg_mask, rows, "negative_attention_mask"),
            )
            check_prompts(self.lm, (input_ids, torch.ones_like(input_ids)), ref, None)
            self._identity = reference_identity(*ref)
            self._decoder = RowDecoder(self.lm, *ref) if self._until > 0 else None
        return input_ids.shape[1] - self._prompt_length

    def _parents(self, input_ids: Tensor) -> Tensor | None:
        """Each row's parent in the previous call, or ``None`` if some row continues no previous row.

        Row ``r`` keeps its reference prompt for the whole generation (transformers keeps
        the beams of prompt ``b`` in rows ``b·num_beams …``; sampling never moves rows), so a
        parent must have the same reference prompt and the row's history minus its newest
        token; among such rows a row is its own parent where it can be (the states of the
        others are identical to its own). Content alone is not enough: two rows with the
        same prompt and different negative prompts have the same token history.
        """
        history, identity = self._history, self._identity
        if history is None or identity is None or input_ids.shape != (history.shape[0], history.shape[1] + 1):
            return None
        same = (input_ids[:, None, :-1] == history[None, :, :]).all(-1) & (identity[:, None] == identity[None, :])
        if not bool(same.any(-1).all()):
            return None
        own = torch.arange(len(same), device=same.device)
        return torch.where(same[own, own], own, same.float().argmax(-1))

    def _reference_logits(self, input_ids: Tensor) -> Tensor:
        decoder = self._decoder
        assert decoder is not None
        if self._parent is None:
            return decoder.prefill()
        if not torch.equal(self._parent, torch.arange(len(self._parent), device=self._parent.device)):
            decoder.select(self._parent)
        return decoder.step(input_ids[:, -1])


@torch.no_grad()
def custom_generate(
    model: nn.Module,
    input_ids: Tensor,
    logits_processor: Any = None,
    stopping_criteria: Any = None,
    generation_config: Any = None,
    synced_gpus: bool = False,
    streamer: Any = None,
    guidance: Guidance | Schedule | float = 1.0,
    negative_input_ids: Tensor | None = None,
    negative_attention_mask: Tensor | None = None,
    space: str = "logprobs",
    plausibility: float | None = None,
    **model_kwargs: Any,
) -> Tensor:
    """The decoding method for ``model.generate(..., custom_generate=custom_generate, guidance=…)``.

    transformers has already expanded ``input_ids`` for ``num_return_sequences`` and built
    the processors (warpers included when sampling) and stopping criteria; this runs
    :func:`~.sample.decode` with them. Do not also set ``guidance_scale`` (that adds the
    built-in guidance processor on top). ``guidance``, ``negative_input_ids``,
    ``negative_attention_mask``, ``space`` and ``plausibility`` are those of
    :func:`~.sample.generate`.
    """
    if any(isinstance(p, hf.builtin_guidance_processor()) for p in logits_processor or []):
        raise ValueError("guidance_scale: pass guidance=... to custom_generate, not guidance_scale (guided twice)")
    if getattr(generation_config, "num_beams", 1) > 1:
        raise ValueError("num_beams: custom_generate decodes greedily or by sampling; use ug generate for beams")
    lm = as_model(model)
    rows = input_ids.shape[0]
    mask = model_kwargs.get("attention_mask")
    mask = torch.ones_like(input_ids) if mask is None else mask.long()
    ref = reference_prompt(
        lm,
        input_ids,
        mask,
        _expand_rows(negative_input_ids, rows, "negative_input_ids"),
        _expand_rows(negative_attention_mask, rows, "negative_attention_mask"),
    )
    check_prompts(lm, (input_ids, mask), ref, generation_config.max_length - input_ids.shape[1])
    g = with_plausibility(as_guidance(guidance), plausibility)
    eos, pad = hf.special_token_tensors(generation_config, input_ids)
    spec = DecodeSpec(
        mixing=Mixing(g, space),
        plan=decode_plan(g, generation_config.max_length - input_ids.shape[1]),
        processors=logits_processor,
        stopping=stopping_criteria,
        eos=eos,
        pad_token_id=int(pad) if pad is not None else lm.pad_token_id,
        do_sample=bool(generation_config.do_sample),
        streamer=None,  # transformers already streamed the prompt; tokens are streamed below
    )
    if streamer is not None:
        spec = replace(spec, streamer=_NoPrompt(streamer))
    return decode(lm, (input_ids, mask), ref, spec).samples


class _NoPrompt:
    """A streamer view that skips the prompt (transformers' ``generate`` already sent it)."""

    def __init__(self, streamer: Any) -> None:
        self.streamer, self.first = streamer, True

    def put(self, value: Tensor) -> None:
        if self.first:
            self.first = False
            return
        self.streamer.put(value)

    def end(self) -> None:
        self.streamer.end()
