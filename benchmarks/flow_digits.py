"""Digits recognised as the requested class at s = 1 and s = 3, as a flow-matching model trains.

    python benchmarks/flow_digits.py [--epochs 30] [--width 32]

Trains a TinyUNet by conditional flow matching (logit-normal times, 10 % label
dropout) on the training digits, and every few epochs samples 200 digits
(20 per class, midpoint 20 steps, fixed noise) at s = 1 and s = 3; the
evaluator (a CNN trained on the same training split, see
``unified_guidance.evaluation``) says how many read as the requested class.
The figures in docs/flow.md come from this script.
"""

from __future__ import annotations

import argparse
import time

import torch

from unified_guidance.data import load_digits_split
from unified_guidance.evaluation import train_digits_classifier
from unified_guidance.flow import VelocityModel, flow_matching_loss, sample
from unified_guidance.networks import TinyUNet


@torch.no_grad()
def recognised(model: VelocityModel, judge, scale: float, n: int = 200) -> float:
    labels = torch.arange(n) % 10
    x0 = torch.randn(n, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    images, _ = sample(model, scale, x0, labels, method="midpoint", steps=20)
    return float((judge.predict(images.clamp(-1, 1)) == labels).float().mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--every", type=int, default=10)
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    split = load_digits_split()
    judge = train_digits_classifier()
    print(f"evaluator held-out accuracy on real digits: {judge.held_out_accuracy:.3f}")
    net = TinyUNet(width=args.width)
    model = VelocityModel(net, null_cond=10)
    opt = torch.optim.AdamW(net.parameters(), lr=args.lr)
    gen = torch.Generator().manual_seed(0)
    x, y = split.train_images, split.train_labels
    print("| epochs | steps | train time | recognised at s=1 | recognised at s=3 |")
    print("|---|---|---|---|---|")
    steps, start = 0, time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        for idx in torch.randperm(len(y), generator=gen).split(128):
            loss = flow_matching_loss(model, x[idx], y[idx], time_sampler="logit_normal", generator=gen)
            opt.zero_grad()
            loss.backward()
            opt.step()
            steps += 1
        if epoch % args.every == 0:
            elapsed = time.perf_counter() - start
            s1, s3 = recognised(model, judge, 1.0), recognised(model, judge, 3.0)
            print(f"| {epoch} | {steps} | {elapsed:.0f} s | {s1:.3f} | {s3:.3f} |", flush=True)


if __name__ == "__main__":
    main()
