"""A guided DDIM step with the network eager and ``torch.compile``-d (inductor), side by side.

    python benchmarks/compiled.py [--repeats 20] [--threads 1] [--clock cpu]

The step is the sampler's: the engine's CFG over one 2B-row forward of a TinyUNet, the
(x̂0, ε̂) pair, the DDIM update. The engine stays eager (its per-call Python is what is
left once the network is compiled); the network is compiled once, before timing.
``--clock cpu`` (process CPU time, one thread) resists other jobs on a shared machine.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import CLOCKS, interleaved_medians

import unified_guidance as ug
from unified_guidance.core.spaces import to_x0_eps
from unified_guidance.diffusion import EpsModel
from unified_guidance.diffusion.sample import ddim_step
from unified_guidance.networks import TinyUNet

NULL = 10  # TinyUNet's ∅ label for 10 classes


def image_net(channels: int, size: int, width: int, device: torch.device, dtype: torch.dtype) -> TinyUNet:
    """A random TinyUNet for ``channels × size × size`` images (output layer not zero, so ε ≠ 0)."""
    torch.manual_seed(0)
    net = TinyUNet(in_channels=channels, image_size=size, num_classes=10, width=width).eval()
    torch.nn.init.normal_(net.out[-1].weight, std=0.02)
    return net.to(device=device, dtype=dtype)


def guided_ddim_step(
    net, x: torch.Tensor, labels: torch.Tensor, guidance: ug.Guidance, *, whole: bool = False
) -> Callable[[], torch.Tensor]:
    """One DDIM step as the sampler makes it: the guided ε at t = 0.5 (with the step's plan, as
    ``diffusion.sample`` passes it), then the update to t = 0.48. ``whole``: the step — engine,
    network and update — compiled as one function."""
    model = EpsModel(net, null_cond=NULL, num_classes=10)
    guided = ug.guide(model, guidance)
    times = torch.tensor([0.5, 0.48], device=x.device)
    c = model.coefficients(times)
    c_t, c_s = (type(c)(*(v[i] for v in (c.alpha_t, c.sigma_t, c.d_alpha_t, c.d_sigma_t))) for i in (0, 1))
    plan = guided.plan(times[:1])[0]

    def step(x: torch.Tensor) -> torch.Tensor:
        x0, eps = to_x0_eps(guided.evaluate(x, times[0], labels, plan=plan).guided, "eps", x, c_t)
        return ddim_step(x, x0, eps, c_t, c_s, None, 0.0)

    run = torch.compile(step) if whole else step
    return lambda: run(x)


def forward_2b(net, x: torch.Tensor, labels: torch.Tensor, t_dtype: torch.dtype) -> Callable[[], torch.Tensor]:
    """One forward of ``net`` over the 2B rows a guided step stacks (conditional, then ∅)."""
    x2, labels2 = torch.cat([x, x]), torch.cat([labels, torch.full_like(labels, NULL)])
    t2 = torch.full((x2.shape[0],), 0.5, dtype=t_dtype, device=x.device)
    return lambda: net(x2, t2, labels2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--clock", choices=tuple(CLOCKS), default="cpu")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--size", type=int, default=16)
    parser.add_argument("--width", type=int, default=32)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cpu = torch.device("cpu")
    eager = image_net(1, args.size, args.width, cpu, torch.float32)
    nets = {"eager": eager, "compiled": torch.compile(eager)}
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(args.batch, 1, args.size, args.size, generator=gen)
    labels = torch.randint(0, 10, (args.batch,), generator=gen)
    fns = {}
    for mode, net in nets.items():
        fns[f"fwd(2B), {mode}"] = forward_2b(net, x, labels, torch.float32)
        fns[f"guided DDIM step, {mode}"] = guided_ddim_step(net, x, labels, ug.Guidance(scale=3.0))
        off = ug.Guidance(scale=3.0, check_finite=False)
        fns[f"guided DDIM step, check_finite=False, {mode}"] = guided_ddim_step(net, x, labels, off)
    fns["whole guided step (engine + network + update), compiled"] = guided_ddim_step(
        eager, x, labels, ug.Guidance(scale=3.0), whole=True
    )
    load = os.getloadavg()[0]
    with torch.no_grad():
        med = interleaved_medians(fns, repeats=args.repeats, warmup=3, clock=args.clock)
    print(
        f"# TinyUNet 1×{args.size}² width {args.width}, batch {args.batch} (2B = {2 * args.batch} rows), float32, "
        f"torch {torch.__version__} CPU, {args.threads} thread(s), {args.clock} clock, median of {args.repeats}; "
        f"load {load:.2f} → {os.getloadavg()[0]:.2f}\n"
    )
    print("| candidate | median ms | × fwd(2B) same mode | compiled / eager |")
    print("|---|---:|---:|---:|")
    for name, sec in med.items():
        mode = name.rsplit(", ", 1)[1]
        if name.startswith("whole"):
            print(f"| {name} | {1e3 * sec:.3f} | {sec / med['fwd(2B), compiled']:.3f} | "
                  f"{sec / med['guided DDIM step, eager']:.2f} |")  # fmt: skip
            continue
        to_fwd = sec / med[f"fwd(2B), {mode}"]
        ratio = f"{sec / med[name.replace(mode, 'eager')]:.2f}" if mode == "compiled" else ""
        print(f"| {name} | {1e3 * sec:.3f} | {to_fwd:.3f} | {ratio} |")


if __name__ == "__main__":
    main()
