"""Where a cached decode step spends its time over 1 row (unguided) and 2 rows (guided, one batch).

Random GPT-2-small (12 × 768, vocabulary 50,257) and the SmolLM2-135M Llama configuration,
built locally; one thread, process CPU time. Prints per step, with the model's own products and
with ours (``CausalLMModel(products=...)``, :mod:`unified_guidance.autoregressive.products`): the
time over 1 and 2 rows, and the self time of the operators that dominate it (torch.profiler).
Then the products of the layers' weight shapes over 1 to 64 rows as the model computes them
(MKL), by oneDNN and weight-left ``(W @ xᵀ)ᵀ``, each over enough distinct weights (~96 MB) that
they are read from memory, as in a decode step: what bounds the 2-row step.
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
from unified_guidance.compat import onednn

OPS = ("aten::addmm", "aten::mm", "mkldnn::_linear_pointwise", "aten::cat",
       "aten::_scaled_dot_product_flash_attention_for_cpu", "aten::mul")  # fmt: skip
# (in, out, stored (in, out) as GPT-2's Conv1D): the layers of both models and GPT-2's head
SHAPES = ((768, 2304, True), (3072, 768, True), (576, 1536, False), (1536, 576, False), (768, 50257, False))
ROWS = (1, 2, 4, 16, 64)


def decode_step(lm, rows: int, repeats: int, products: str) -> tuple[float, dict[str, float]]:
    """Milliseconds of one cached step over ``rows`` rows after a 16-token prompt, and the ops' self ms."""
    model = CausalLMModel(lm, pad_token_id=0, products=products)
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


def products(k: int, n: int, stored_in_out: bool, rows: int, repeats: int = 3) -> dict[str, float]:
    """Milliseconds of one ``rows × k`` by ``k × n`` product, the weights streamed from memory."""
    count = max(2, int(96e6 / (4 * k * n)))
    weights = [torch.randn(k, n) if stored_in_out else torch.randn(n, k) for _ in range(count)]
    x = torch.randn(rows, k)
    ways = {
        "model (MKL)": (lambda w: x @ w) if stored_in_out else (lambda w: torch.nn.functional.linear(x, w)),
        "oneDNN": lambda w: onednn.linear(x, w.T if stored_in_out else w, None),
        "weight-left": (lambda w: (w.T @ x.T).T) if stored_in_out else (lambda w: (w @ x.T).T),
    }
    out = {}
    for name, f in ways.items():
        best = float("inf")
        for _ in range(repeats + 1):
            start = time.process_time()
            for w in weights:
                f(w)
            best = min(best, (time.process_time() - start) / count)
        out[name] = 1e3 * best
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"# load {os.getloadavg()[0]:.2f}, torch {torch.__version__}, 1 thread, process CPU time\n")
    models = {"GPT-2 small": (12, 768, 12, "gpt2"), "SmolLM2-135M config": (0, 0, 0, "smollm2")}
    for name, spec in models.items():
        lm = build_model(*spec)
        for way in ("model", "auto"):
            (one, ops1), (two, ops2) = (decode_step(lm, rows, args.repeats, way) for rows in (1, 2))
            print(f"## {name}, products={way!r}: step over 1 row {one:.1f} ms, over 2 rows {two:.1f} ms "
                  f"({two / one:.2f}×)\n")  # fmt: skip
            print("| operator (self time) | 1 row, ms | 2 rows, ms |\n|---|---:|---:|")
            for op in sorted(set(ops1) | set(ops2), key=lambda o: -ops2.get(o, 0.0)):
                print(f"| `{op}` | {ops1.get(op, 0.0):.2f} | {ops2.get(op, 0.0):.2f} |")
            print()
    print(f"## One product, weights read from memory: ms over {' / '.join(map(str, ROWS))} rows\n")
    print("| in → out (stored) | model (MKL) | oneDNN | weight-left |\n|---|---|---|---|")
    for k, n, stored_in_out in SHAPES:
        by_rows = [products(k, n, stored_in_out, r) for r in ROWS]
        cells = [" / ".join(f"{t[way]:.2f}" for t in by_rows) for way in by_rows[0]]
        print(f"| {k} → {n} ({'in, out' if stored_in_out else 'out, in'}) | {' | '.join(cells)} |")


if __name__ == "__main__":
    main()
