"""The three recipes, run through their LightningCLI entry points at tiny sizes."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import lightning as L
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
