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


class SigintAtEpoch(L.Callback):
    """Sends this process a real SIGINT (as Ctrl-C does) at batch ``batch`` of ``epoch``."""

    def __init__(self, epoch: int, batch: int = 0) -> None:
        self.epoch, self.batch = epoch, batch

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.current_epoch == self.epoch and batch_idx == self.batch:
            os.kill(os.getpid(), signal.SIGINT)


def assert_sigint_resume_is_exact(name: str, root: Path, *args: str, steps: int, stop: SigintAtEpoch,
                                  interrupted_at: int, saved_at: int) -> Any:  # fmt: skip
    """Run the recipe ``name`` on ``args`` straight to ``steps``; again, stopped by a real SIGINT (``stop``)
    at step ``interrupted_at`` with its last.ckpt at ``saved_at``; resume that in a fresh state and
    assert every training tensor equals the straight run's exactly. Returns the resumed run."""
    straight = cli(name, None, root / "straight", *args, run=False)
    straight.trainer.fit(straight.model, straight.datamodule)
    assert straight.trainer.global_step == steps

    first = cli(name, None, root / "first", *args, run=False)
    first.trainer.callbacks.append(stop)
    with pytest.raises(SystemExit):  # Lightning tears down and exits on Ctrl-C
        first.trainer.fit(first.model, first.datamodule)
    assert first.trainer.interrupted and first.trainer.global_step == interrupted_at
    last = root / "first" / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=False)["global_step"] == saved_at

    torch.manual_seed(123)  # a fresh process: nothing but the checkpoint carries over
    resumed = cli(name, None, root / "resumed", *args, run=False)
    resumed.trainer.fit(resumed.model, resumed.datamodule, ckpt_path=last)
    assert resumed.trainer.global_step == steps
    a, b = training_state(straight.model, straight.trainer), training_state(resumed.model, resumed.trainer)
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        torch.testing.assert_close(x, y, rtol=0, atol=0)
    return resumed
