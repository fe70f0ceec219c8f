"""The demo's text section: logit guidance on a pretrained chat LM, judged and measured.

For every setting (plain CFG over scales, and the token mitigations at a high scale) all
prompts × samples of all attributes (:mod:`.text_prompts`) decode in ONE
:func:`~unified_guidance.autoregressive.generate` call: the conditional and the reference rows
run as one forward over 2B rows with one KV cache, each distinct prompt is prefilled once, and
a row leaves the batch at its EOS. Each (attribute, setting) gives a report row with adherence
(the outside judge), diversity (distinct-2, self-BLEU), fluency (perplexity under the unguided
model given the bare question, and given the instructed one; each prompt runs once for the
whole section, :class:`~unified_guidance.evaluation.text.PromptScorer`), degeneration
(repeated 3-grams), content kept, length and tokens/s, each measure with a 95 % bootstrap interval.

Without the model package (or the ``text`` extra) the section is skipped with a one-line
message saying how to get it.
"""

from __future__ import annotations

import importlib.util
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from functools import partial
from typing import Any

import numpy as np
import torch

from ..autoregressive import CausalLMModel, chat_prompts, generate, load_causal_lm
from ..autoregressive.loading import MODEL_PACKAGE, MODEL_PACKAGE_HINT, LoadedLM, packaged_gguf
from ..compat.transformers import quiet_loading
from ..evaluation.judges import judge_name
from ..evaluation.text import (
    PromptScorer,
    bootstrap_interval,
    contains_answer,
    distinct_n,
    mean_interval,
    perplexity,
    repetition,
    self_bleu,
)
from ..guidance.engine import Guidance
from ..training.stages import track
from .text_methods import TEXT_METHODS, middle_layers
from .text_options import TextOptions
from .text_prompts import Attribute, Question

MEASURES: tuple[str, ...] = (
    "adherence", "distinct_2", "self_bleu", "repetition", "perplexity", "perplexity_cond", "content_kept", "length",
)  # fmt: skip
"""The measures of a row; each comes with ``MEASURE_ci`` = [lo, hi], its 95 % bootstrap interval."""

TEXT_ROW_FIELDS: tuple[str, ...] = (
    "paradigm", "attribute", "method", "scale", *(f for m in MEASURES for f in (m, f"{m}_ci")),
    "tokens_per_s", "seconds", "forward_rows_per_sample", "samples",
)  # fmt: skip
"""Every text row of ``report.json`` has exactly these keys (``paradigm`` is ``"text"``)."""


def missing_requirement(opts: TextOptions) -> str | None:
    """Why the section cannot run here (one line naming how to fix it), or ``None``."""
    needed = ["py3langid", "vaderSentiment", "sacrebleu"]
    model = opts.model if opts.model is not None else packaged_gguf()
    if model is None:
        return f"the text model package {MODEL_PACKAGE} is not installed; {MODEL_PACKAGE_HINT}"
    if opts.gguf_file or str(model).endswith(".gguf"):
        needed += ["gguf", "accelerate"]
    absent = [m for m in needed if importlib.util.find_spec(m) is None]
    if absent:
        return f"{', '.join(absent)} not installed; make demo installs them (or pip install 'unified-guidance[text]')"
    return None


@dataclass(frozen=True)
class Prompts:
    """The section's prompt rows (attribute-major), tokenized once: condition, reference, bare question."""

    attributes: tuple[Attribute, ...]
    questions: tuple[Question, ...]
    cond: dict[str, torch.Tensor]
    ref: dict[str, torch.Tensor]
    bare: dict[str, torch.Tensor]

    @classmethod
    def build(cls, tokenizer: Any, attributes: Sequence[Attribute], questions: Sequence[Question]) -> Prompts:
        pairs = [(a, q) for a in attributes for q in questions]
        return cls(
            tuple(a for a, _ in pairs),
            tuple(q for _, q in pairs),
            chat_prompts(tokenizer, [a.condition(q) for a, q in pairs]),
            chat_prompts(tokenizer, [a.reference(q) for a, q in pairs]),
            chat_prompts(tokenizer, [q.text for _, q in pairs]),
        )


@dataclass(frozen=True)
class Generated:
    """One setting's outputs: new tokens ``(R, T)`` with their mask (through the first EOS), texts, cost."""

    tokens: torch.Tensor
    mask: torch.Tensor
    texts: list[str]
    seconds: float
    forward_rows: int


def generate_setting(
    loaded: LoadedLM, model: CausalLMModel, prompts: Prompts, g: Guidance, samples: int, max_new_tokens: int,
    opts: TextOptions,
) -> Generated:  # fmt: skip
    """Every prompt × ``samples`` under ``g`` in one guided decode; rows of prompt i are i·samples …"""
    tok = loaded.tokenizer
    before, start = model.stats, time.perf_counter()
    ids = generate(
        model, prompts.cond["input_ids"], attention_mask=prompts.cond["attention_mask"],
        negative_input_ids=prompts.ref["input_ids"], negative_attention_mask=prompts.ref["attention_mask"],
        guidance=g, max_new_tokens=max_new_tokens, do_sample=True, temperature=opts.temperature, top_p=opts.top_p,
        num_return_sequences=samples, pad_token_id=tok.pad_token_id,
        generator=torch.Generator().manual_seed(opts.seed),
    )  # fmt: skip
    seconds = time.perf_counter() - start
    new = ids[:, prompts.cond["input_ids"].shape[1] :]
    eos = getattr(loaded.lm.generation_config, "eos_token_id", None)
    eos = torch.tensor([] if eos is None else [eos] if isinstance(eos, int) else list(eos), dtype=torch.long)
    ended = torch.isin(new, eos).long()
    mask = (ended.cumsum(1) - ended == 0).long()  # up to and including the first EOS
    texts = tok.batch_decode(new, skip_special_tokens=True)
    return Generated(new, mask, [t.strip() for t in texts], seconds, (model.stats - before).rows)


def _perplexity_at(total: np.ndarray, count: np.ndarray, rows: np.ndarray) -> float:
    return perplexity(total[rows], count[rows])


def _nll(scorer: PromptScorer, rows: torch.Tensor, out: Generated) -> tuple[np.ndarray, np.ndarray]:
    nll, count = scorer(rows, out.tokens, out.mask)
    return nll.numpy(), count.numpy()


def measure_attribute(
    texts: Sequence[str], questions: Sequence[Question], samples: int, judge: Callable[[str], bool],
    nll: tuple[np.ndarray, np.ndarray], nll_cond: tuple[np.ndarray, np.ndarray], lengths: np.ndarray,
    resamples: int = 1000,
) -> dict[str, Any]:  # fmt: skip
    """One attribute's measures with intervals; outputs grouped by question, ``samples`` each.

    Per-output measures resample outputs; distinct-2 and self-BLEU (per question) resample questions.
    """
    per_output = {
        "adherence": [float(judge(t)) for t in texts],
        "repetition": [repetition(t, 3) for t in texts],
        "content_kept": [
            float(contains_answer(t, q.answers)) if q.answers else float("nan")
            for t, q in zip(texts, questions, strict=True)
        ],
        "length": [float(n) for n in lengths],
    }
    groups = [list(texts[i : i + samples]) for i in range(0, len(texts), samples)]
    per_group = {"distinct_2": [distinct_n(g, 2) for g in groups], "self_bleu": [self_bleu(g) for g in groups]}
    out: dict[str, Any] = {}
    for name, values in (per_output | per_group).items():
        known = [v for v in values if np.isfinite(v)]  # content kept: questions with a known answer
        out[name] = float(np.mean(known)) if known else float("nan")
        out[f"{name}_ci"] = list(mean_interval(known, resamples=resamples)) if known else [float("nan")] * 2
    for name, (total, count) in (("perplexity", nll), ("perplexity_cond", nll_cond)):
        out[name] = perplexity(total, count)
        ci = bootstrap_interval(partial(_perplexity_at, total, count), len(total), resamples=resamples)
        out[f"{name}_ci"] = list(ci)
    return out


def _rows(prompts: Prompts, out: Generated, scorers, judges, samples: int, setting, resamples: int) -> list[dict]:
    method, scale = setting
    rows_of = torch.arange(len(prompts.questions)).repeat_interleave(samples)
    nll, nll_cond = _nll(scorers[0], rows_of, out), _nll(scorers[1], rows_of, out)
    lengths = out.mask.sum(1).numpy()
    result = []
    for a in dict.fromkeys(prompts.attributes):
        sel = np.flatnonzero([prompts.attributes[int(p)] == a for p in rows_of])
        m = measure_attribute(
            [out.texts[i] for i in sel], [prompts.questions[int(rows_of[i])] for i in sel], samples, judges[a.name],
            (nll[0][sel], nll[1][sel]), (nll_cond[0][sel], nll_cond[1][sel]), lengths[sel], resamples,
        )  # fmt: skip
        row = {"paradigm": "text", "attribute": a.name, "method": method, "scale": scale, **m}
        row |= {
            "tokens_per_s": float(lengths.sum()) / out.seconds if out.seconds > 0 else float("nan"),
            "seconds": out.seconds,
            "forward_rows_per_sample": out.forward_rows / len(out.texts),
            "samples": len(sel),
        }
        result.append({k: row[k] for k in TEXT_ROW_FIELDS})
    return result


def run_text_section(
    opts: TextOptions, *, quick: bool, progress: bool = True, loaded: LoadedLM | None = None
) -> tuple[list[dict[str, Any]], dict[str, Any], dict[str, Any]]:
    """Run the section: its report rows, its meta, and every output text by attribute and setting.

    Returns no rows and ``meta = {"skipped": reason}`` (and prints the reason in one line) when
    the model or the judges are not installed.
    """
    if loaded is None and (reason := missing_requirement(opts)) is not None:
        print(f"text section skipped: {reason}", file=sys.stderr, flush=True)
        return [], {"skipped": reason}, {}
    n_questions, samples, max_new_tokens = opts.sizes(quick)
    sweep = opts.settings()
    start = time.perf_counter()
    if loaded is None:
        source = opts.model if opts.model is not None else packaged_gguf()
        with quiet_loading():  # the GGUF conversion and weight-loading bars: nothing for the demo's reader
            loaded = load_causal_lm(str(source), gguf_file=opts.gguf_file, local_files_only=True)
    load_seconds = time.perf_counter() - start
    judges = {a.name: a.make_judge() for a in opts.attributes}
    prompts = Prompts.build(loaded.tokenizer, opts.attributes, opts.question_set[:n_questions])
    model = CausalLMModel(loaded.lm, pad_token_id=loaded.tokenizer.pad_token_id)
    # Fluency: under the unguided model, given the bare and the instructed prompt (each run once).
    scorers = [PromptScorer(loaded.lm, p["input_ids"], p["attention_mask"]) for p in (prompts.bare, prompts.cond)]
    params = (
        opts.params if opts.params.amateur_layers else replace(opts.params, amateur_layers=middle_layers(loaded.lm))
    )
    rows, texts = [], {}
    for setting in track(sweep, "text: settings", progress=progress):
        g = TEXT_METHODS[setting[0]](setting[1], params)
        out = generate_setting(loaded, model, prompts, g, samples, max_new_tokens, opts)
        rows += _rows(prompts, out, scorers, judges, samples, setting, opts.resamples)
        texts[f"{setting[0]} s={setting[1]:g}"] = out.texts
    meta = {
        "skipped": None,
        "model": loaded.name,
        "source": loaded.source,
        "parameters": loaded.parameters,
        "questions": n_questions,
        "samples": samples,
        "max_new_tokens": max_new_tokens,
        "temperature": opts.temperature,
        "top_p": opts.top_p,
        "seed": opts.seed,
        "params": asdict(params) | {"interval": list(params.interval), "amateur_layers": list(params.amateur_layers)},
        "attributes": {
            a.name: {"instruction": a.instruction, "negative": a.negative, "judge": judge_name(judges[a.name])}
            for a in opts.attributes
        },
        "load_seconds": load_seconds,
        "seconds": time.perf_counter() - start,
    }
    by_attribute = _texts_by_attribute(prompts, texts, samples)
    return rows, meta, by_attribute


def _texts_by_attribute(prompts: Prompts, texts: dict[str, list[str]], samples: int) -> dict[str, Any]:
    """``{attribute: {"questions": [...], "outputs": {setting: [[samples of q0], …]}}}``."""
    out: dict[str, Any] = {}
    for a in dict.fromkeys(prompts.attributes):
        idx = [i for i, b in enumerate(prompts.attributes) if b == a]
        out[a.name] = {
            "questions": [prompts.questions[i].text for i in idx],
            "outputs": {
                label: [all_texts[i * samples : (i + 1) * samples] for i in idx] for label, all_texts in texts.items()
            },
        }
    return out
