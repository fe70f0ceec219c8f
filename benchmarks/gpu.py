"""The speed ratios on a CUDA device, in one short run (≈ 3–5 minutes on one H200).

    python benchmarks/gpu.py --out gpu.md            # everything; the markdown table goes to gpu.md
    python benchmarks/gpu.py --sections ar           # only guided decoding
    python benchmarks/gpu.py --smoke                 # tiny models on the CPU: checks the script itself
    python benchmarks/gpu.py --sections vllm --vllm-python .venv-vllm-cuda/bin/python   # guided pairs in vLLM

* **AR** (bf16): guided greedy decoding (one 2B-row forward, one cache) against transformers'
  built-in ``guidance_scale`` CFG and against unguided ``generate``, at batch 1/8/32, for a
  random GPT-2-small (12 × 768, vocabulary 50257) and the SmolLM2-135M Llama configuration
  (30 × 576, vocabulary 49152), both built locally (nothing is downloaded).
* **Diffusion / flow**: one guided step (the engine's CFG over a 2B-row forward, then the
  DDIM update; for flow one guided field evaluation as torchdiffeq makes it) against one
  forward of the network over 2B rows, with the network eager and ``torch.compile``-d.

Times are medians of interleaved repeats, measured with the device synchronised before and
after each candidate. Without CUDA (and without ``--smoke``) the script exits with status 2.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from autoregressive import build_model, methods
from common import device_clock, interleaved_medians
from compiled import NULL, forward_2b, guided_ddim_step, image_net

import unified_guidance as ug
from unified_guidance.core.shapes import time_dtype
from unified_guidance.flow import VelocityModel
from unified_guidance.flow.field import GuidedField

SECTIONS = ("ar", "diffusion", "flow")
OPTIONAL = ("vllm",)  # run only when named: needs vLLM's CUDA build (its own environment, docs/vllm.md)
Row = tuple[str, str, float, str]  # section, candidate, seconds, what it is compared with


def lm_models(smoke: bool) -> dict[str, Callable[[], torch.nn.Module]]:
    """Builders of the two random language models (tiny ones for ``--smoke``)."""
    if smoke:
        tiny = {"vocab_size": 512, "bos_token_id": None}
        llama = {"num_hidden_layers": 2, "hidden_size": 64, "intermediate_size": 128, "num_attention_heads": 4,
                 "num_key_value_heads": 2, **tiny}  # fmt: skip
        return {
            "GPT-2 2×64 (smoke)": lambda: build_model(2, 64, 4, "gpt2", **tiny),
            "Llama 2×64 (smoke)": lambda: build_model(0, 0, 0, "smollm2", **llama),
        }
    return {
        "GPT-2 small 12×768": lambda: build_model(12, 768, 12, "gpt2"),
        "SmolLM2-135M config 30×576": lambda: build_model(0, 0, 0, "smollm2"),
    }


AR_CANDIDATES = (
    "unguided (transformers)",
    "built-in CFG (transformers)",
    "ours (one 2B forward, one cache)",
    "ours, the model's own products",
)


def ar_candidates(lm, ids: torch.Tensor, neg: torch.Tensor, tokens: int, scale: float) -> dict[str, Callable]:
    """The CPU benchmark's decoders (benchmarks/autoregressive.py), all greedy with EOS disabled so
    each makes exactly ``tokens`` tokens: unguided, the built-in CFG, ours, ours with the model's own products."""
    every = methods(lm, ids, neg, tokens, scale)
    return {name: every[name] for name in AR_CANDIDATES}


def run_ar(args: argparse.Namespace, device: torch.device, clock) -> list[Row]:
    rows: list[Row] = []
    for name, build in lm_models(args.smoke).items():
        lm = build().to(device=device, dtype=torch.bfloat16)
        gen = torch.Generator().manual_seed(0)
        for batch in args.batch_sizes:
            ids = torch.randint(1, lm.config.vocab_size, (batch, args.prompt_length), generator=gen).to(device)
            neg = torch.randint(1, lm.config.vocab_size, (1, args.prompt_length // 2), generator=gen).to(device)
            fns = ar_candidates(lm, ids, neg, args.tokens, args.scale)
            with torch.inference_mode():
                med = interleaved_medians(fns, repeats=args.repeats, warmup=1, clock=clock)
            section = f"AR {name}, batch {batch}"
            base, builtin = med["unguided (transformers)"], med["built-in CFG (transformers)"]
            for cand, sec in med.items():
                ratio = f"{sec / base:.2f}× unguided, {sec / builtin:.2f}× built-in"
                rows.append((section, f"{cand}: ms / token", sec / args.tokens, ratio))
        del lm
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return rows


def step_candidates(paradigm: str, net, x: torch.Tensor, labels: torch.Tensor, scale: float) -> dict[str, Callable]:
    """One guided step of ``paradigm`` (checks on and off) and one forward of ``net`` over 2B rows."""
    t = torch.tensor(0.5, device=x.device)
    # the times the adapters hand the network: EpsModel's in at least float32, VelocityModel's in x's dtype
    t_dtype = time_dtype(x.dtype) if paradigm == "diffusion" else x.dtype
    fns: dict[str, Callable] = {"fwd(2B)": forward_2b(net, x, labels, t_dtype)}
    for checked in (True, False):
        guidance = ug.Guidance(scale=scale, check_finite=checked)
        label = "guided step" + ("" if checked else ", check_finite=False")
        if paradigm == "diffusion":
            fns[label] = guided_ddim_step(net, x, labels, guidance)
        else:
            guided = ug.guide(VelocityModel(net, null_cond=NULL), guidance)
            field = GuidedField(guided, labels, set(), check_finite=checked)
            fns[label] = lambda field=field: field(t.to(x.dtype), x)
    return fns


def run_steps(paradigm: str, args: argparse.Namespace, device: torch.device, clock) -> list[Row]:
    dtype = torch.bfloat16
    eager = image_net(4, args.image_size, args.width, device, dtype)
    modes = {"eager": eager}
    if args.compile_backend != "none":
        modes[f"compiled ({args.compile_backend})"] = torch.compile(eager, backend=args.compile_backend)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(args.image_batch, 4, args.image_size, args.image_size, generator=gen).to(device, dtype)
    labels = torch.randint(0, 10, (args.image_batch,), generator=gen).to(device)
    fns = {}
    for mode, net in modes.items():
        fns.update({f"{name}, {mode}": fn for name, fn in step_candidates(paradigm, net, x, labels, 3.0).items()})
    with torch.inference_mode():
        med = interleaved_medians(fns, repeats=args.step_repeats, warmup=3, clock=clock)
    section = f"{paradigm}: TinyUNet 4×{args.image_size}² width {args.width}, B = {args.image_batch}, {dtype}"
    rows: list[Row] = []
    for name, sec in med.items():
        mode = name.split(", ")[-1]
        to_fwd, to_eager = sec / med[f"fwd(2B), {mode}"], sec / med[name.replace(mode, "eager")]
        ratio = f"{to_fwd:.3f}× fwd(2B) {mode}, {to_eager:.2f}× eager"
        rows.append((section, f"{name}: ms", sec, ratio))
    return rows


def run_vllm(args: argparse.Namespace, device: torch.device, clock) -> list[Row]:
    """Guided pairs vs unguided vLLM vs our decoder (benchmarks/guided_vllm.py --gpu) in the vLLM environment's
    Python (``--vllm-python``); its rows become this table's: time per generated token."""
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "vllm.md"
        cmd = [args.vllm_python, str(Path(__file__).with_name("guided_vllm.py")), "--gpu", "--dtype", "bfloat16",
               "--tokens", str(args.tokens), "--repeats", str(args.repeats), "--out", str(out),
               "--batch-sizes", *map(str, args.batch_sizes)]  # fmt: skip
        subprocess.run(cmd, check=True, capture_output=True, text=True)
        lines = [line.strip("| ").split(" | ") for line in out.read_text().splitlines() if line.startswith("| ")]
    rows = [r for r in lines[1:] if r[0].isdigit()]
    return [(f"vLLM b{b}", name, 1.0 / float(tps.replace(",", "")), f"{r} unguided vLLM") for b, name, tps, r in rows]


def table(rows: list[Row], header: str) -> str:
    lines = [header, "", "| section | candidate | time | ratios |", "|---|---|---:|---|"]
    lines += [f"| {sec} | {cand} | {1e3 * t:.3f} ms | {ratio} |" for sec, cand, t, ratio in rows]
    return "\n".join(lines) + "\n"


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="write the markdown table here (default: stdout)")
    parser.add_argument("--sections", nargs="+", choices=SECTIONS + OPTIONAL, default=list(SECTIONS))
    parser.add_argument("--vllm-python", default=sys.executable, help="the Python of vLLM's environment (vllm)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--prompt-length", type=int, default=16)
    parser.add_argument("--scale", type=float, default=3.0)
    parser.add_argument("--repeats", type=int, default=3, help="repeats of each decoder (interleaved)")
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--image-batch", type=int, default=16)
    parser.add_argument("--step-repeats", type=int, default=30)
    parser.add_argument("--compile-backend", default="inductor", help="torch.compile backend, or 'none'")
    parser.add_argument("--smoke", action="store_true", help="tiny models on the CPU (no CUDA needed)")
    args = parser.parse_args(argv)
    if args.smoke:  # a check of the script, not a measurement
        args.tokens, args.repeats, args.step_repeats, args.batch_sizes = 3, 1, 1, args.batch_sizes[:2]
        args.image_size, args.width, args.image_batch, args.compile_backend = 8, 16, 2, "eager"
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if not args.smoke and not torch.cuda.is_available():
        print("benchmarks/gpu.py: no CUDA device (torch.cuda.is_available() is False); run it on a GPU machine, "
              "or pass --smoke to check the script on the CPU", file=sys.stderr)  # fmt: skip
        return 2
    device = torch.device("cpu" if args.smoke else "cuda")
    if device.type == "cpu":
        torch.set_num_threads(1)
    clock = device_clock(device)
    runners = {"ar": run_ar, "diffusion": partial(run_steps, "diffusion"), "flow": partial(run_steps, "flow"),
               "vllm": run_vllm}  # fmt: skip
    rows: list[Row] = []
    failed = False
    for section in (s for s in SECTIONS + OPTIONAL if s in args.sections):
        try:
            rows += runners[section](args, device, clock)
        except Exception as err:  # keep the other sections' figures; the table names the failure
            failed = True
            rows.append((section, "FAILED", float("nan"), f"{type(err).__name__}: {err}".replace("|", "/")[:300]))
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU (smoke run: not a measurement)"
    header = (
        f"# benchmarks/gpu.py — {where}, torch {torch.__version__}, {args.tokens} new tokens, prompt "
        f"{args.prompt_length}, scale {args.scale}, medians of {args.repeats} (AR) / {args.step_repeats} (steps); "
        f"host load {os.getloadavg()[0]:.2f}"
    )
    text = table(rows, header)
    if args.out is None:
        sys.stdout.write(text)
    else:
        args.out.write_text(text)
        print(f"wrote {args.out}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
