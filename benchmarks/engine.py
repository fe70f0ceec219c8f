"""Cost of each guidance rule relative to one forward of a small convolutional network.

Batch 16 of 64×64×4 inputs (a latent-diffusion-sized tensor). Every candidate is
timed round-robin in one run; the table gives each rule's median time as a
share of the network's median forward. Goal: CFG ≤ 1 %, every rule ≤ 5 %.

    python benchmarks/engine.py [--repeats 30]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import interleaved_medians, machine

import unified_guidance as ug
from unified_guidance import guidance as G
from unified_guidance.schedules import Interval, LinearBetaSchedule


class ReferenceNet(nn.Module):
    """A small conv net: 4 → 64 channels, two residual 3×3 blocks, back to 4 channels."""

    def __init__(self, width: int = 64) -> None:
        super().__init__()
        self.inp = nn.Conv2d(4, width, 3, padding=1)
        self.blocks = nn.ModuleList(nn.Conv2d(width, width, 3, padding=1) for _ in range(2))
        self.out = nn.Conv2d(width, 4, 3, padding=1)

    def forward(self, x, t, cond):
        h = self.inp(x)
        for block in self.blocks:
            h = h + block(torch.nn.functional.silu(h))
        return self.out(h)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    torch.manual_seed(0)
    net = ReferenceNet().eval()
    x = torch.randn(16, 4, 64, 64)
    c, u = torch.randn_like(x), torch.randn_like(x)
    t = torch.tensor(0.5)
    model = ug.core.FunctionModel(net, space="eps", path=LinearBetaSchedule(), null_cond=torch.zeros(()))
    cond = torch.ones(16)
    guided = {
        "engine: CFG (2B forward + rule)": ug.guide(model, 5.0),
        "engine: CFG, check_finite=False": ug.guide(model, ug.Guidance(scale=5.0, check_finite=False)),
        "engine: CFG + rescale (x0)": ug.guide(model, ug.Guidance(scale=5.0, post=[G.Rescale(0.7)])),
        "engine: interval, outside (B forward)": ug.guide(model, ug.Guidance(scale=Interval(5.0, 0.9, 1.0))),
    }
    x2, t2, cond2 = torch.cat([x, x]), t, torch.cat([cond, torch.zeros(16)])
    state = None

    def apg_step():
        nonlocal state
        _, state = G.apg(c, u, 5.0, momentum=-0.5, norm_threshold=10.0, state=state)

    candidates = {
        "network forward, batch 16": lambda: net(x, t, cond),
        "network forward, batch 32": lambda: net(x2, t2, cond2),
        "cfg": lambda: G.cfg(c, u, 5.0),
        "cfg, per-sample scale": lambda: G.cfg(c, u, torch.full((16,), 5.0)),
        "rescale": lambda: G.rescale(G.cfg(c, u, 5.0), c, 0.7),
        "static_clip": lambda: G.static_clip(c),
        "dynamic_threshold": lambda: G.dynamic_threshold(c, 0.995),
        "norm_cap": lambda: G.norm_cap(u, c, 1.0),
        "apg (momentum, clip)": apg_step,
        "cfg_zero_star": lambda: G.cfg_zero_star(c, u, 5.0),
        "multi_cfg (3 conditions)": lambda: G.multi_cfg([c, u, c], u, [2.0, 1.0, 0.5]),
    }
    candidates.update({name: (lambda g=g: g(x, t, cond)) for name, g in guided.items()})
    with torch.no_grad():
        med = interleaved_medians(candidates, repeats=args.repeats)
    base = med["network forward, batch 16"]
    print(f"# engine benchmark ({machine()}), batch 16 × 4 × 64 × 64, median of {args.repeats}\n")
    print("| candidate | median ms | share of one forward (batch 16) |")
    print("|---|---:|---:|")
    for name, sec in med.items():
        print(f"| {name} | {sec * 1e3:.3f} | {100 * sec / base:.2f} % |")
    overhead = med["engine: CFG (2B forward + rule)"] - med["network forward, batch 32"]
    print(
        f"\nengine overhead over the 2B forward (CFG): {1e3 * overhead:.3f} ms = {100 * overhead / base:.2f} % "
        "of one forward"
    )
    checks = med["engine: CFG (2B forward + rule)"] - med["engine: CFG, check_finite=False"]
    print(f"run-time value checks (one read-back per call): {1e3 * checks:.3f} ms = {100 * checks / base:.2f} %")


if __name__ == "__main__":
    main()
