"""Cost of guided 50-step DDIM against unguided DDIM with the same network, side by side in one run.

For each input size (digits 8×8 and 32×32, batch 64) the run times, round-robin:
the unguided sampler (B rows a step), the guided one (one stacked 2B forward a
step), the guided one with a 0.2–0.8 guidance interval (2B rows inside, B
outside), the bare network over the same 50 steps at batch B and 2B, and the
samplers around an identity network (their own work). Goals:
guided/unguided within 2 % of fwd(2B)/fwd(B) (no overhead beyond the model), and
the interval run at the cost of 0.6·fwd(2B) + 0.4·fwd(B) per step.

    python benchmarks/diffusion.py [--repeats 5] [--device cuda]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import CLOCKS, interleaved_medians, machine

from unified_guidance import Guidance
from unified_guidance.diffusion import EpsModel, sample, time_grid
from unified_guidance.networks import TinyUNet
from unified_guidance.schedules import Interval, LinearBetaSchedule

INTERVAL = Interval(5.0, 0.2, 0.8)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def candidates(size: int, channels: int, batch: int, steps: int, width: int, device: torch.device) -> dict:
    torch.manual_seed(0)
    net = TinyUNet(in_channels=channels, image_size=size, num_classes=10, width=width).to(device).eval()
    model = EpsModel(net, null_cond=10, num_classes=10)
    free = EpsModel(lambda x, t, c: x, null_cond=10, num_classes=10)  # a network that costs nothing
    shape = (batch, channels, size, size)
    labels = torch.arange(batch, device=device) % 10
    x, x2 = torch.randn(shape, device=device), torch.randn((2 * batch, *shape[1:]), device=device)
    lab2 = torch.cat([labels, torch.full_like(labels, 10)])
    t, t2 = torch.rand(batch, device=device), torch.rand(2 * batch, device=device)

    def run(fn):
        def timed():
            fn()
            _sync(device)

        return timed

    def forwards(xb, tb, lb):
        for _ in range(steps):
            net(xb, tb, lb)

    return {
        "network, B rows × steps": run(lambda: forwards(x, t, labels)),
        "network, 2B rows × steps": run(lambda: forwards(x2, t2, lab2)),
        "DDIM unguided (s = 1)": run(lambda: sample(model, 1.0, shape, labels, steps=steps)),
        "DDIM guided (s = 5)": run(lambda: sample(model, 5.0, shape, labels, steps=steps)),
        "DDIM interval 0.2–0.8": run(lambda: sample(model, Guidance(scale=INTERVAL), shape, labels, steps=steps)),
        "DDIM unguided, identity network": run(lambda: sample(free, 1.0, shape, labels, steps=steps)),
        "DDIM guided, identity network": run(lambda: sample(free, 5.0, shape, labels, steps=steps)),
    }  # fmt: skip


def report(med: dict[str, float], steps: int) -> None:
    fwd_b, fwd_2b = med["network, B rows × steps"], med["network, 2B rows × steps"]
    unguided, guided, interval = med["DDIM unguided (s = 1)"], med["DDIM guided (s = 5)"], med["DDIM interval 0.2–0.8"]
    tau = 1.0 - time_grid(LinearBetaSchedule(), steps)[:-1]  # the τ the sampler visits
    inside = int((INTERVAL(tau) != 1.0).sum())
    for name, sec in med.items():
        print(f"| {name} | {sec * 1e3:.1f} |")
    print(
        f"\n- guided / unguided = {guided / unguided:.3f}; fwd(2B) / fwd(B) = {fwd_2b / fwd_b:.3f}; "
        f"difference {100 * (guided / unguided / (fwd_2b / fwd_b) - 1):+.1f} %"
    )
    print(
        f"- sampler overhead beyond the network: unguided {100 * (unguided / fwd_b - 1):+.1f} %, "
        f"guided {100 * (guided / fwd_2b - 1):+.1f} %"
    )
    own_u, own_g = med["DDIM unguided, identity network"], med["DDIM guided, identity network"]
    print(
        f"- the sampler's own work per step (identity network): unguided {own_u / steps * 1e3:.3f} ms "
        f"({100 * own_u / fwd_b:.1f} % of the B forwards), guided {own_g / steps * 1e3:.3f} ms "
        f"({100 * own_g / fwd_2b:.1f} % of the 2B forwards)"
    )
    expected = (inside * fwd_2b + (steps - inside) * fwd_b) / steps
    print(
        f"- interval 0.2–0.8 ({inside}/{steps} steps guided): {interval / guided:.3f} of the guided run; "
        f"measured / expected from the forwards = {interval / expected:.3f}\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=None, help="CPU intra-op threads (default: torch's)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[8, 32], help="image sizes (8: 1 channel, else 3)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--clock", choices=tuple(CLOCKS), default="wall", help="cpu: process time (CPU only)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print(
        f"# diffusion sampling benchmark ({machine()}), batch {args.batch}, {args.steps} DDIM steps, "
        f"TinyUNet width {args.width}, median of {args.repeats}, {args.clock} clock\n"
    )
    for size in args.sizes:
        channels = 1 if size == 8 else 3
        with torch.no_grad():
            fns = candidates(size, channels, args.batch, args.steps, args.width, device)
            med = interleaved_medians(fns, repeats=args.repeats, warmup=args.warmup, clock=args.clock)
        print(f"## {channels}×{size}×{size}\n\n| candidate | median ms |\n|---|---:|")
        report(med, args.steps)


if __name__ == "__main__":
    main()
