"""Time per generated token: unguided decoding, transformers' built-in CFG, ours; side by side in one run.

    python benchmarks/autoregressive.py                         # GPT-2-small-sized random model, batch 1 and 8
    python benchmarks/autoregressive.py --model smollm2         # the SmolLM2-135M Llama configuration
    python benchmarks/autoregressive.py --threads 1 --clock cpu # process CPU time: robust on a shared machine

The model is randomly initialised (nothing is downloaded): timing does not depend
on the weights. Each configuration is timed ``--repeats`` times, interleaved with
the others so that machine load hits all of them alike; the minimum (least disturbed) is reported.
EOS is disabled so every run decodes exactly ``--tokens`` tokens. Goals on CPU:
ours ≤ 0.6× the built-in's time and ≤ 1.2× unguided at batch 1, ≤ 1.3× at batch 8.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable

import torch
from common import CLOCKS
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

from unified_guidance.autoregressive import CausalLMModel, generate


def build_model(layers: int, width: int, heads: int, kind: str = "gpt2", **overrides):
    """A random GPT-2 (``layers × width``) or the SmolLM2-135M Llama configuration (30 × 576, GQA 9/3 heads,
    MLP 1536, vocabulary 49152, tied embeddings); ``overrides`` replace config fields (a tiny smoke run)."""
    torch.manual_seed(0)
    if kind == "smollm2":
        smollm2 = dict(
            vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
            num_key_value_heads=3, max_position_embeddings=2048, tie_word_embeddings=True, eos_token_id=None,
            pad_token_id=0, bos_token_id=None,
        )  # fmt: skip
        config = LlamaConfig(**{**smollm2, **overrides})
        lm = LlamaForCausalLM(config).eval()
    else:
        gpt2 = dict(n_layer=layers, n_embd=width, n_head=heads, eos_token_id=None, pad_token_id=0)
        config = GPT2Config(**{**gpt2, **overrides})
        lm = GPT2LMHeadModel(config).eval()
    lm.generation_config.eos_token_id = None
    lm.generation_config.pad_token_id = 0
    return lm


def methods(lm, ids: torch.Tensor, neg: torch.Tensor, tokens: int, scale: float) -> dict[str, Callable[[], object]]:
    common = {"max_new_tokens": tokens, "do_sample": False}
    own_products = CausalLMModel(lm, pad_token_id=0, products="model")
    return {
        "unguided (transformers)": lambda: lm.generate(ids, min_new_tokens=tokens, **common),
        "built-in CFG (transformers)": lambda: lm.generate(
            ids, guidance_scale=scale, negative_prompt_ids=neg.expand(ids.shape[0], -1), **common
        ),
        "ours (one 2B forward, one cache)": lambda: generate(
            lm, ids, negative_input_ids=neg, guidance=scale, eos_token_id=[], **common
        ),
        "ours, the model's own products": lambda: generate(
            own_products, ids, negative_input_ids=neg, guidance=scale, eos_token_id=[], **common
        ),
        "ours unguided (guidance 1, our products)": lambda: generate(lm, ids, guidance=1.0, eos_token_id=[], **common),
        "ours, negative as long as the prompt (no padding)": lambda: generate(
            lm, ids, negative_input_ids=ids.flip(-1)[:1], guidance=scale, eos_token_id=[], **common
        ),
    }


def raw_forward(lm, ids: torch.Tensor, tokens: int) -> Callable[[], object]:
    """The floor: ``tokens`` cached one-token forwards over the rows of ``ids``, no decoding logic."""
    from unified_guidance.compat import transformers as hf

    keyword = hf.cache_keyword(hf.forward_parameters(lm))

    def fn() -> None:
        cache = hf.new_dynamic_cache(lm.config)
        out = lm(ids, use_cache=True, logits_to_keep=1, **{keyword: cache})
        step = ids[:, -1:]
        for _ in range(tokens - 1):
            out = lm(step, use_cache=True, logits_to_keep=1, **{keyword: hf.returned_cache(out)})

    return fn


def run(args: argparse.Namespace) -> list[tuple[int, str, float]]:
    torch.set_num_threads(args.threads)
    lm = build_model(args.layers, args.width, args.heads, args.model)
    now = CLOCKS[args.clock]
    gen = torch.Generator().manual_seed(0)
    rows = []
    for batch in args.batch_sizes:
        ids = torch.randint(1, lm.config.vocab_size, (batch, args.prompt_length), generator=gen)
        neg = torch.randint(1, lm.config.vocab_size, (1, args.prompt_length // 2), generator=gen)  # shared negative
        fns = methods(lm, ids, neg, args.tokens, args.scale)
        fns["raw forwards, B rows"] = raw_forward(lm, ids, args.tokens)
        fns["raw forwards, 2B rows"] = raw_forward(lm, torch.cat([ids, ids]), args.tokens)
        with torch.no_grad():
            for fn in fns.values():  # warm-up
                fn()
            times: dict[str, list[float]] = {name: [] for name in fns}
            for _ in range(args.repeats):
                for name, fn in fns.items():
                    start = now()
                    fn()
                    times[name].append((now() - start) / args.tokens)
        rows += [(batch, name, min(ts)) for name, ts in times.items()]
    return rows


def table(rows: list[tuple[int, str, float]]) -> str:
    lines = [
        "| batch | method | ms / token | × unguided | × built-in |",
        "|---:|---|---:|---:|---:|",
    ]
    for batch in sorted({r[0] for r in rows}):
        mine = {name: t for b, name, t in rows if b == batch}
        base, builtin = mine["unguided (transformers)"], mine["built-in CFG (transformers)"]
        for name, t in mine.items():
            lines.append(f"| {batch} | {name} | {1e3 * t:.1f} | {t / base:.2f} | {t / builtin:.2f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--tokens", type=int, default=16)
    parser.add_argument("--prompt-length", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--scale", type=float, default=3.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--layers", type=int, default=12)  # GPT-2 small: 12 layers, 768 wide, 12 heads
    parser.add_argument("--width", type=int, default=768)
    parser.add_argument("--heads", type=int, default=12)
    parser.add_argument("--model", choices=("gpt2", "smollm2"), default="gpt2")
    parser.add_argument("--clock", choices=tuple(CLOCKS), default="wall")
    args = parser.parse_args()
    size = "SmolLM2-135M configuration" if args.model == "smollm2" else f"GPT-2 {args.layers}×{args.width}"
    print(
        f"{size} (random), prompt {args.prompt_length}, {args.tokens} new tokens, {args.threads} threads, "
        f"{args.clock} clock, torch {torch.__version__}, best of {args.repeats}; load {os.getloadavg()[0]:.2f}"
    )
    print(table(run(args)))


if __name__ == "__main__":
    main()
