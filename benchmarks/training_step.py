"""Cost of a training step per objective: CFG vs GFT vs model-guidance vs distillation, side by side.

    python benchmarks/training_step.py [--batch 128] [--width 32] [--threads 1] [--repeats 15] [--clock cpu]

One step is what the Lightning modules run each batch: the loss (``diffusion_loss`` /
``flow_matching_loss`` with its ``objective``), its backward and an AdamW step, on the digits
(8×8, TinyUNet) with condition dropout 0.1. The networks are built as the modules build them
(``default_net(..., guidance_input=True)`` for GFT and distillation, whose strength embedding costs
a little too); the distillation teacher is a network of the same size without the strength input.
Extra forwards per step (all without gradient): GFT one of B rows (∅ at β = 1), MG one of B rows
(∅; the conditional branch is the gradient forward, detached), distillation one of 2B rows (the
teacher's conditional and ∅). Goal: a GFT step ≤ 1.3× a CFG step.

Every candidate is timed round-robin in one process (median of repeats); by default process CPU
time with one thread, which a loaded shared machine barely distorts (``--clock wall`` for wall time).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import interleaved_medians, machine

from unified_guidance.data import load_digits_split
from unified_guidance.diffusion import EpsModel, diffusion_loss
from unified_guidance.flow import VelocityModel, flow_matching_loss
from unified_guidance.guidance.objectives import Objective
from unified_guidance.networks.default import default_net

OBJECTIVES = ("cfg", "gft", "model_guidance", "distill")


def step_fn(paradigm: str, objective: str, x: torch.Tensor, labels: torch.Tensor, width: int) -> Callable[[], None]:
    """One training step (loss, backward, AdamW) of ``objective`` in ``paradigm``, on a fixed batch."""
    torch.manual_seed(0)
    wrap = (
        (lambda n: EpsModel(n, null_cond=10, num_classes=10))
        if paradigm == "diffusion"
        else (lambda n: VelocityModel(n, null_cond=10))
    )
    net = default_net((1, 8, 8), 10, width, guidance_input=objective in ("gft", "distill"))
    model = wrap(net)
    teacher = wrap(default_net((1, 8, 8), 10, width).requires_grad_(False)) if objective == "distill" else None
    spec = Objective(objective, teacher=teacher)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-4)
    step = [0]

    def run() -> None:
        gen = torch.Generator().manual_seed(step[0])
        step[0] += 1
        if paradigm == "diffusion":
            dropped = torch.rand(len(labels), generator=gen) < 0.1
            loss = diffusion_loss(model, x, torch.where(dropped, 10, labels), generator=gen, objective=spec)
        else:
            loss = flow_matching_loss(model, x, labels, p_uncond=0.1, generator=gen, objective=spec)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--clock", choices=("cpu", "wall"), default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    split = load_digits_split()
    x, labels = split.train_images[: args.batch], split.train_labels[: args.batch]
    candidates = {
        (paradigm, objective): step_fn(paradigm, objective, x, labels, args.width)
        for paradigm in ("diffusion", "flow")
        for objective in OBJECTIVES
    }
    fns = {f"{p} {o}": fn for (p, o), fn in candidates.items()}
    net, t = default_net((1, 8, 8), 10, args.width), torch.rand(args.batch)  # the cost of an extra forward

    def forward() -> None:
        with torch.no_grad():
            net(x, t, labels)

    fns["forward"] = forward
    load_before = os.getloadavg()[0]
    med = interleaved_medians(fns, repeats=args.repeats, clock=args.clock)
    load_after = os.getloadavg()[0]
    print(
        f"# training-step benchmark ({machine()}), TinyUNet width {args.width}, digits batch {args.batch}, "
        f"{args.clock} clock, median of {args.repeats}; load average {load_before:.1f} → {load_after:.1f}\n"
    )
    print("| paradigm | " + " | ".join(OBJECTIVES) + " |")
    print("|---|" + "---:|" * len(OBJECTIVES))
    for paradigm in ("diffusion", "flow"):
        base = med[f"{paradigm} cfg"]
        cells = [f"{1e3 * med[f'{paradigm} {o}']:.1f} ms ({med[f'{paradigm} {o}'] / base:.2f}×)" for o in OBJECTIVES]
        print(f"| {paradigm} | " + " | ".join(cells) + " |")
    worst = max(med[f"{p} gft"] / med[f"{p} cfg"] for p in ("diffusion", "flow"))
    share = med["forward"] / med["diffusion cfg"]
    print(f"\nGFT step / CFG step, worse paradigm: {worst:.2f}× (goal ≤ 1.3×)")
    print(f"one forward of B rows without gradient: {1e3 * med['forward']:.1f} ms = {share:.2f} of a CFG step "
          f"(GFT adds it for the ≈ 90 % of rows with β < 1: ≈ {1 + 0.9 * share:.2f}×)")  # fmt: skip


if __name__ == "__main__":
    main()
