"""Where a cached decode step spends its time over 1 row (unguided) and 2 rows (guided, one batch).

Random GPT-2-small (12 × 768, vocabulary 50,257) and the SmolLM2-135M Llama configuration,
built locally; one thread, process CPU time. Prints per step: the time over 1 and 2 rows, and
the self time of the operators that dominate it (torch.profiler); then single products of the
per-layer weight shapes over 1, 2 and 4 rows as ``F.linear`` and as ``(W @ xᵀ)ᵀ``, to show
what bounds the 2-row step.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parent))
from autoregressive import build_model

from unified_guidance.autoregressive import CausalLMModel
from unified_guidance.autoregressive.decoding import RowDecoder

OPS = ("aten::addmm", "aten::mm", "aten::cat", "aten::_scaled_dot_product_flash_attention_for_cpu", "aten::mul")
SHAPES = ((768, 2304), (768, 3072), (3072, 768), (576, 1536), (1536, 576))  # (in, out) of the layers


def decode_step(lm, rows: int, repeats: int) -> tuple[float, dict[str, float]]:
    """Milliseconds of one cached step over ``rows`` rows after a 16-token prompt, and the ops' self ms."""
    model = CausalLMModel(lm, pad_token_id=0)
    ids = torch.randint(5, 1000, (rows, 16), generator=torch.Generator().manual_seed(0))
    decoder = RowDecoder(model, ids, torch.ones_like(ids))
    token = torch.randint(5, 1000, (rows,), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        decoder.prefill()
        for _ in range(3):
            decoder.step(token)
        start = time.process_time()
        for _ in range(repeats):
            decoder.step(token)
        per_step = (time.process_time() - start) / repeats
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(10):
                decoder.step(token)
    ops = {e.key: e.self_cpu_time_total / 10 / 1e3 for e in prof.key_averages() if e.key in OPS}
    return 1e3 * per_step, ops


def product(rows: int, k: int, n: int, weight_left: bool, repeats: int = 200) -> float:
    w, x = torch.randn(n, k), torch.randn(rows, k)
    f = (lambda: (w @ x.T).T) if weight_left else (lambda: torch.nn.functional.linear(x, w))
    for _ in range(10):
        f()
    start = time.process_time()
    for _ in range(repeats):
        f()
    return 1e3 * (time.process_time() - start) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"# load {os.getloadavg()[0]:.2f}, torch {torch.__version__}, 1 thread, process CPU time\n")
    models = {"GPT-2 small": (12, 768, 12, "gpt2"), "SmolLM2-135M config": (0, 0, 0, "smollm2")}
    for name, spec in models.items():
        lm = build_model(*spec)
        (one, ops1), (two, ops2) = decode_step(lm, 1, args.repeats), decode_step(lm, 2, args.repeats)
        print(f"## {name}: step over 1 row {one:.1f} ms, over 2 rows {two:.1f} ms ({two / one:.2f}×)\n")
        print("| operator (self time) | 1 row, ms | 2 rows, ms |\n|---|---:|---:|")
        for op in sorted(set(ops1) | set(ops2), key=lambda o: -ops2.get(o, 0.0)):
            print(f"| `{op}` | {ops1.get(op, 0.0):.2f} | {ops2.get(op, 0.0):.2f} |")
        print()
    print("## One product, weights (out, in): ms over 1 / 2 / 4 rows\n")
    print("| in → out | F.linear | (W @ xᵀ)ᵀ |\n|---|---|---|")
    for k, n in SHAPES:
        cells = [" / ".join(f"{product(r, k, n, left):.3f}" for r in (1, 2, 4)) for left in (False, True)]
        print(f"| {k} → {n} | {cells[0]} | {cells[1]} |")


if __name__ == "__main__":
    main()
