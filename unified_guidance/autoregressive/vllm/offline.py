"""Guided generation with vLLM's offline engine: every guided prompt runs as a pair of requests.

    from unified_guidance.autoregressive.vllm import guided_llm, generate
    llm = guided_llm(model_dir, dtype="float32")           # vllm.LLM with the pair scheduler and processor
    outs = generate(llm, ["w5 w7 w9"], SamplingParams(max_tokens=32, temperature=0.7, seed=3),
                    guidance=1.5, negative_prompts="w1")   # one RequestOutput per prompt

The engine is driven step by step (``LLM.llm_engine``): both members of each pair are added, the
conditional first; when a conditional ends (a stop string is seen by the detokenizer, which only it
runs) its reference is aborted; the returned outputs are the conditional requests'.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from vllm import LLM, SamplingParams
from vllm.inputs import TokensPrompt

from ...guidance.spec import Guidance, as_guidance
from ...schedules.scale import Schedule
from ..mixing import Mixing, with_plausibility
from ..progress import decode_plan
from .pairs import dump_mixing, pair_params
from .processor import PairLogitsProcessor
from .scheduler import PairScheduler

Prompt = str | Sequence[int]


def guided_llm(model: str, **kwargs: Any) -> LLM:
    """``vllm.LLM(model, **kwargs)`` with :class:`PairScheduler`, :class:`PairLogitsProcessor` and
    synchronous scheduling (other logits processors passed in ``logits_processors`` are kept)."""
    if kwargs.get("async_scheduling"):
        raise ValueError("async_scheduling: expected False (or unset) for guided pairs, got True")
    processors = [*(kwargs.pop("logits_processors", None) or []), PairLogitsProcessor]
    return LLM(model=model, scheduler_cls=PairScheduler, async_scheduling=False, logits_processors=processors,
               **kwargs)  # fmt: skip


def _ids(llm: LLM, prompt: Prompt, name: str) -> list[int]:
    if isinstance(prompt, str):
        ids = llm.get_tokenizer().encode(prompt, add_special_tokens=False)
    elif isinstance(prompt, Sequence) and all(isinstance(t, int) and not isinstance(t, bool) for t in prompt):
        ids = list(prompt)
    else:
        raise TypeError(f"{name}: expected a string or a sequence of token ids, got {type(prompt).__name__}")
    if not ids:
        raise ValueError(f"{name}: expected at least one token, got an empty prompt")
    return ids


def _per_prompt(value: Any, count: int, name: str, one: type | tuple[type, ...]) -> list[Any]:
    if value is None or isinstance(value, one):
        return [value] * count
    if isinstance(value, Sequence) and len(value) == count:
        return list(value)
    raise ValueError(f"{name}: expected one value for all prompts or a list of {count}, got {value!r}")


def _mixing(guidance: Guidance | Schedule | float, space: str, plausibility: float | None) -> Mixing:
    g = with_plausibility(as_guidance(guidance), plausibility)
    mixing = Mixing(g, space)
    if len(g.references) > 1 or g.references[0].source is not None:
        raise ValueError("guidance: vLLM pairs take one reference (∅ or the negative prompt); "
                         "perturbed and further references are not supported")  # fmt: skip
    return mixing


def generate(
    llm: LLM,
    prompts: Sequence[Prompt],
    sampling_params: SamplingParams | Sequence[SamplingParams] | None = None,
    *,
    guidance: Guidance | Schedule | float = 1.0,
    negative_prompts: Prompt | Sequence[Prompt] | None = None,
    space: str = "logprobs",
    plausibility: float | None = None,
    _pairs: bool = False,
) -> list[Any]:
    """Guided generation of ``prompts`` (strings or token ids); one ``RequestOutput`` per prompt, in order.

    Args:
        llm: an engine from :func:`guided_llm`.
        sampling_params: vLLM's parameters (one for all or one per prompt): temperature, top-k/top-p,
            seed, stop strings and token ids, ``max_tokens`` (also N of the scale plan, τ_k = k/(N−1)).
        guidance: a scale, a schedule over token progress or a one-reference :class:`Guidance`.
        negative_prompts: the reference prompt, one for all or one per prompt; default: each prompt's
            last token (as :func:`~unified_guidance.autoregressive.generate` and transformers).
        space, plausibility: as in :func:`~unified_guidance.autoregressive.generate`.
    """
    ids = [_ids(llm, p, f"prompts[{i}]") for i, p in enumerate(prompts)]
    params = _per_prompt(sampling_params or SamplingParams(), len(ids), "sampling_params", SamplingParams)
    if (
        negative_prompts is None
        or isinstance(negative_prompts, str)
        or (isinstance(negative_prompts, Sequence) and all(isinstance(t, int) for t in negative_prompts))
    ):
        negs: list[Any] = [negative_prompts] * len(ids)
    else:
        negs = _per_prompt(negative_prompts, len(ids), "negative_prompts", ())
    negs = [p[-1:] if n is None else _ids(llm, n, f"negative_prompts[{i}]") for i, (p, n) in enumerate(zip(ids, negs))]  # noqa: B905
    mixing = _mixing(guidance, space, plausibility)
    blob, engine = dump_mixing(mixing), llm.llm_engine
    max_len = engine.model_config.max_model_len
    run, conds, refs = uuid.uuid4().hex[:8], {}, {}
    for i, (p, n, sp) in enumerate(zip(ids, negs, params, strict=True)):
        steps = sp.max_tokens if sp.max_tokens is not None else max_len - len(p)
        until = decode_plan(mixing.guidance, steps).unused_from(0)  # the reference stops running here
        cap = min(steps, max_len - max(len(p), len(n)))
        key = f"ug-{run}-{i}"
        if until == 0:  # guidance never acts: a plain request
            engine.add_request(f"{key}-c", TokensPrompt(prompt_token_ids=p), sp)
        else:
            cond, ref = pair_params(sp, key, blob, steps, until, cap)
            engine.add_request(f"{key}-c", TokensPrompt(prompt_token_ids=p), cond)
            engine.add_request(f"{key}-u", TokensPrompt(prompt_token_ids=n), ref)
            refs[f"{key}-u"] = False
        conds[f"{key}-c"] = i
    pairs = _drive(engine, conds, refs)
    return pairs if _pairs else [cond for cond, _ in pairs]


def generate_pairs(llm: LLM, prompts: Sequence[Prompt], *args: Any, **kwargs: Any) -> list[tuple[Any, Any]]:
    """As :func:`generate`, returning ``(conditional output, reference output)`` per prompt; the
    reference's is ``None`` where it was aborted (its conditional stopped on a string) or never ran."""
    return generate(llm, prompts, *args, _pairs=True, **kwargs)


def _drive(engine: Any, conds: dict[str, int], refs: dict[str, Any]) -> list[tuple[Any, Any]]:
    """Step the engine until every request ended; abort a reference whose conditional ended first."""
    results: list[list[Any]] = [[None, None] for _ in conds]
    while engine.has_unfinished_requests():
        for out in engine.step():
            if not out.finished:
                continue
            if out.request_id in conds:
                results[conds[out.request_id]][0] = out
                ref = out.request_id[:-2] + "-u"
                if refs.get(ref) is False:
                    engine.abort_request([ref])
                    refs[ref] = None
            elif out.request_id in refs:
                refs[out.request_id] = out
                results[conds[out.request_id[:-2] + "-c"]][1] = out
    return [(c, r) for c, r in results]
