"""The three recipes, run through their LightningCLI entry points at tiny sizes."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch

from recipes import train_autoregressive, train_diffusion, train_flow
from unified_guidance.training.checkpoints import LastCheckpoint
from unified_guidance.training.compat import sigterm_exception

RECIPES_DIR = Path(__file__).resolve().parents[2] / "unified_guidance" / "recipes"

# name: (entry point, YAML, overrides that make the model tiny)
RECIPES = {
    "diffusion": (train_diffusion.main, "diffusion_digits.yaml", ["--model.width=8", "--model.sample_steps=2"]),
    "flow": (train_flow.main, "flow_digits.yaml", ["--model.width=8", "--model.sample_steps=2"]),
    "autoregressive": (
        train_autoregressive.main, "ar_digits.yaml", ["--model.width=16", "--model.layers=1", "--model.heads=2"],
    ),
}  # fmt: skip

QUIET = ["--trainer.logger=false", "--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false"]


def cli(name: str, subcommand: str | None, root: Path, *extra: str, run: bool = True):
    """The recipe's LightningCLI on its YAML, tiny, writing under ``root``."""
    main, yaml, tiny = RECIPES[name]
    head = [subcommand] if subcommand else []
    args = [*head, "--config", str(RECIPES_DIR / yaml), f"--trainer.default_root_dir={root}", *QUIET, *tiny, *extra]
    return main(args, run=run)


def training_state(module, trainer) -> list[torch.Tensor]:
    """Every tensor a continued run depends on: weights, EMA, buffers, optimiser moments."""
    opt = trainer.optimizers[0].state_dict()["state"]
    return [*module.state_dict().values(), *(v for s in opt.values() for v in s.values() if torch.is_tensor(v))]


class SignalAt(L.Callback):
    """Sends this process a real signal at batch ``batch`` of ``epoch``: SIGINT as Ctrl-C does, or
    SIGTERM as a scheduler or ``kill`` does (Lightning stops after that batch)."""

    def __init__(self, epoch: int, batch: int = 0, signum: int = signal.SIGINT) -> None:
        self.epoch, self.batch, self.signum = epoch, batch, signum

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.current_epoch == self.epoch and batch_idx == self.batch:
            os.kill(os.getpid(), self.signum)


_STRAIGHT: dict[tuple[str, ...], list[torch.Tensor]] = {}


def straight_state(name: str, root: Path, *args: str, steps: int) -> list[torch.Tensor]:
    """The training tensors of the recipe ``name`` run on ``args`` without a stop (computed once per
    recipe and arguments in a test session)."""
    key = (name, *args)
    if key not in _STRAIGHT:
        straight = cli(name, None, root / "straight", *args, run=False)
        straight.trainer.fit(straight.model, straight.datamodule)
        assert straight.trainer.global_step == steps
        _STRAIGHT[key] = [t.detach().clone() for t in training_state(straight.model, straight.trainer)]
    return _STRAIGHT[key]


def assert_resumes_exactly(name: str, root: Path, checkpoint: Path, *args: str, steps: int) -> Any:
    """Resume the recipe ``name`` on ``args`` from ``checkpoint`` in a fresh state and assert every
    training tensor at ``steps`` equals the uninterrupted run's exactly. Returns the resumed run."""
    expected = straight_state(name, root, *args, steps=steps)
    torch.manual_seed(123)  # a fresh process: nothing but the checkpoint carries over
    resumed = cli(name, None, root / "resumed", *args, run=False)
    resumed.trainer.fit(resumed.model, resumed.datamodule, ckpt_path=checkpoint)
    assert resumed.trainer.global_step == steps
    got = training_state(resumed.model, resumed.trainer)
    assert len(expected) == len(got)
    for x, y in zip(expected, got, strict=True):
        torch.testing.assert_close(x, y, rtol=0, atol=0)
    return resumed


def assert_signal_resume_is_exact(name: str, root: Path, *args: str, steps: int, stop: SignalAt,
                                  interrupted_at: int, saved_at: int) -> Any:  # fmt: skip
    """Run the recipe ``name`` on ``args``, stopped by a real signal (``stop``) at step ``interrupted_at``
    with its last.ckpt at ``saved_at`` (SIGTERM: saved at the stop); resume that in a fresh state and
    assert every training tensor equals the uninterrupted run's exactly. Returns the resumed run."""
    first = cli(name, None, root / "first", *args, run=False)
    first.trainer.callbacks.append(stop)
    with pytest.raises(SystemExit) as exited:  # Lightning tears down and exits on Ctrl-C, stops on SIGTERM
        first.trainer.fit(first.model, first.datamodule)
    assert first.trainer.interrupted and first.trainer.global_step == interrupted_at
    last = root / "first" / "checkpoints" / "last.ckpt"
    if stop.signum == signal.SIGTERM:
        assert isinstance(exited.value, sigterm_exception())
        assert [c.sigterm_saved for c in first.trainer.callbacks if isinstance(c, LastCheckpoint)] == [last]
    assert torch.load(last, weights_only=False)["global_step"] == saved_at
    assert not list(last.parent.glob("*.tmp"))  # no half-written checkpoint left
    return assert_resumes_exactly(name, root, last, *args, steps=steps)
