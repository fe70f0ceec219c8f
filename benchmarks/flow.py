"""Flow-matching benchmarks: cost of guidance, overhead of the library, jump points.

    python benchmarks/flow.py [--threads 1] [--batch 256] [--repeats 5]

1. Guided (s = 3, cond + ∅ in one 2B forward) vs unguided (s = 1, reference
   skipped) sampling with the same network: euler 50 steps and dopri5, with NFE.
2. ``unified_guidance.flow.sample`` vs a plain ``torchdiffeq.odeint`` call with a
   hand-written CFG closure over the same network (the same batched forward):
   the library's overhead (target ≤ 3 %).
3. dopri5 evaluations on the exact 2-D mixture: constant guidance, an interval
   with its ends as jump points, and the same interval without them.

The network is a TinyUNet (width 32) trained briefly on the digits here, so its
velocity field is a real one (an untrained net outputs zero). Timings are the
median of interleaved repeats in one process; by default process CPU time
with one thread, which a shared, loaded machine does not distort (``--clock wall``
for wall time).
"""

from __future__ import annotations

import argparse
import statistics
import time
from functools import partial

import torch
from torchdiffeq import odeint

from unified_guidance import Guidance
from unified_guidance.data import load_digits_split, two_d_mixture
from unified_guidance.flow import VelocityModel, flow_matching_loss, sample
from unified_guidance.networks import TinyUNet
from unified_guidance.schedules import Interval, LinearFlowPath

DOPRI = {"method": "dopri5", "rtol": 1e-4, "atol": 1e-4}
EULER = {"method": "euler", "steps": 50}


def train_net(steps: int) -> TinyUNet:
    torch.manual_seed(0)
    split = load_digits_split()
    net = TinyUNet(width=32)
    model = VelocityModel(net, null_cond=10)
    opt = torch.optim.AdamW(net.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(0)
    for _ in range(steps):
        idx = torch.randint(0, len(split.train_labels), (128,), generator=gen)
        loss = flow_matching_loss(model, split.train_images[idx], split.train_labels[idx], generator=gen)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return net.eval().requires_grad_(False)


def hand_written(net, x0, labels, scale, solver):
    """What a user writes without the library: one batched forward, CFG by hand, odeint."""
    null = torch.full_like(labels, 10)
    both = torch.cat([labels, null])
    nfe = [0]

    def closure(t, x):
        nfe[0] += 1
        out = net(torch.cat([x, x]), t.expand(2 * x.shape[0]), both)
        cond, uncond = out.chunk(2)
        return torch.lerp(uncond, cond, scale)  # u + s(c − u), rounded as the library rounds it

    # dopri5: the end as a step_t point, as ug.flow.sample does, so both make the same evaluations
    # (without it torchdiffeq's last step overshoots t = 1 and evaluates the network beyond it).
    opts = {"step_size": 1.0 / solver["steps"]} if solver["method"] == "euler" else {"step_t": torch.tensor([0.0, 1.0])}
    tol = {k: solver[k] for k in ("rtol", "atol") if k in solver}
    return odeint(closure, x0, torch.tensor([0.0, 1.0]), method=solver["method"], options=opts, **tol)[-1], nfe[0]


CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
CLOCK = CLOCKS["cpu"]


def timed(fn, repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        start = CLOCK()
        out = fn()
        times.append(CLOCK() - start)
    return statistics.median(times), out


def bench_network(args) -> None:
    net = train_net(args.train_steps)
    model = VelocityModel(net, null_cond=10)
    gen = torch.Generator().manual_seed(0)
    x0 = torch.randn(args.batch, 1, 8, 8, generator=gen)
    labels = torch.arange(args.batch) % 10
    print(
        f"\nTinyUNet(width=32), batch {args.batch}, {torch.get_num_threads()} thread(s), "
        f"{args.clock} time, median of {args.repeats}\n"
    )
    print("| solver | unguided s=1: time (NFE, rows) | guided s=3: time (NFE, rows) | guided/unguided |")
    print("|---|---|---|---|")
    for name, solver in (("euler 50", EULER), ("dopri5 1e-4", DOPRI)):
        res = {}
        for scale in (1.0, 3.0):
            res[scale] = timed(lambda s=scale, sv=solver: sample(model, s, x0, labels, **sv), args.repeats)
        (t1, (_, s1)), (t3, (_, s3)) = res[1.0], res[3.0]
        print(
            f"| {name} | {t1:.3f} s ({s1.nfe}, {s1.forward_rows}) | {t3:.3f} s ({s3.nfe}, {s3.forward_rows}) "
            f"| {t3 / t1:.2f}× |"
        )
    print("\n| solver | plain odeint + hand CFG | ug.flow.sample | ug.flow.sample, check_finite=False | overhead |")
    print("|---|---|---|---|---|")
    for name, solver in (("euler 50", EULER), ("dopri5 1e-4", DOPRI)):
        runners = (
            partial(hand_written, net, x0, labels, 3.0, solver),
            partial(sample, model, Guidance(scale=3.0), x0, labels, **solver),
            partial(sample, model, Guidance(scale=3.0, check_finite=False), x0, labels, **solver),
        )
        plain, ours, unchecked = [], [], []
        for _ in range(args.repeats):  # interleaved, so drifts in machine load hit all three alike
            for runs, fn in zip((plain, ours, unchecked), runners, strict=True):
                runs.append(timed(fn, 1))
        tp, to, tu = (statistics.median(r[0] for r in runs) for runs in (plain, ours, unchecked))
        (xp, nfe_p), (xo, so) = plain[-1][1], ours[-1][1]
        assert nfe_p == so.nfe and torch.allclose(xp, xo, atol=1e-4), "the two integrations must agree"
        print(f"| {name} (NFE {so.nfe}) | {tp:.3f} s | {to:.3f} s | {tu:.3f} s | {100 * (to / tp - 1):+.1f} % |")


def bench_jumps() -> None:
    torch.set_default_dtype(torch.float64)
    mixture = two_d_mixture(path=LinearFlowPath(), space="velocity")
    x0 = torch.randn(64, 2, generator=torch.Generator().manual_seed(0))
    labels = torch.arange(64) % 3
    print("\ndopri5 NFE on the exact 2-D mixture (64 samples, t ∈ [0, 1 − 1e-4], interval τ ∈ [0.3, 0.7])\n")
    print("| s | rtol = atol | constant s | interval + jump points | interval, no jump points |")
    print("|---|---|---|---|---|")
    for scale in (2.0, 3.0):
        for tol in (1e-3, 1e-4, 1e-5, 1e-6):
            kw = {"t_span": (0.0, 1 - 1e-4), "rtol": tol, "atol": tol}
            const = sample(mixture, scale, x0, labels, **kw).stats
            jump = sample(mixture, Interval(scale, lo=0.3, hi=0.7), x0, labels, **kw).stats
            nojump = sample(mixture, Interval(scale, lo=0.3, hi=0.7), x0, labels, jump_points=False, **kw).stats
            print(
                f"| {scale:g} | {tol:g} | {const.nfe} | {jump.nfe} (rows {jump.forward_rows // 64} vs "
                f"{const.forward_rows // 64}) | {nojump.nfe} ({nojump.nfe / jump.nfe:.1f}×) |"
            )
    torch.set_default_dtype(torch.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--clock", choices=tuple(CLOCKS), default="cpu", help="cpu: process time (robust to load)")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--train-steps", type=int, default=300)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    global CLOCK
    CLOCK = CLOCKS[args.clock]
    bench_network(args)
    bench_jumps()


if __name__ == "__main__":
    main()
