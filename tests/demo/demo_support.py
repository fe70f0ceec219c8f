"""A tiny real evaluator for the demo's tests (nearest class mean on the training digits), and parts for run_jobs."""

import os
import time
from pathlib import Path

import torch
from torch import Tensor, nn

from unified_guidance.data import load_digits_split


class NearestMean(nn.Module):
    """logits = −‖x − μ_c‖² over class means of the training digits; features = the 64 pixels."""

    def __init__(self) -> None:
        super().__init__()
        split = load_digits_split(0.2, seed=0)
        flat = split.train_images.reshape(-1, 64)
        self.means = torch.stack([flat[split.train_labels == c].mean(0) for c in range(10)])
        self.held_out_accuracy = float((self(split.val_images).argmax(1) == split.val_labels).float().mean())

    def features(self, x: Tensor) -> Tensor:
        return x.reshape(x.shape[0], -1).float()

    def forward(self, x: Tensor) -> Tensor:
        return -torch.cdist(self.features(x), self.means).square()


# Parts for run_jobs' tests: module-level, so a spawned worker can import them.


def train_flow(path: str, max_steps: int) -> int:
    """A real training under a resumable checkpoint, as a demo part runs one (a tiny flow model)."""
    from unified_guidance.demo.runners import get_runner
    from unified_guidance.training.data import DigitsDataModule
    from unified_guidance.training.fit import fit
    from unified_guidance.training.resume import resumable

    runner = get_runner("flow")
    config = runner.config(True) | {"width": 8, "max_steps": max_steps, "batch_size": 16, "sample_steps": 2}
    with resumable(path, every_n_steps=5):
        return fit(runner.make(config), DigitsDataModule(batch_size=16), max_steps=max_steps, seed=0, progress=False)


def mark_then_sleep(flag: str, seconds: float) -> str:
    """Write this process's id to ``flag`` (it runs), sleep, then touch ``flag + ".done"`` (it was not stopped)."""
    Path(flag).write_text(str(os.getpid()))
    time.sleep(seconds)
    Path(flag + ".done").touch()
    return flag


def fail_when(flag: str, message: str) -> None:
    """Wait until ``flag`` exists, then raise ``ValueError(message)``."""
    while not Path(flag).exists():
        time.sleep(0.05)
    raise ValueError(message)


def train_flow_shown(max_steps: int) -> int:
    """A tiny real flow training that reports its steps (``"flow: training"``), as a demo part's does."""
    from unified_guidance.demo.runners import get_runner
    from unified_guidance.training.data import DigitsDataModule
    from unified_guidance.training.fit import fit

    runner = get_runner("flow")
    config = runner.config(True) | {"width": 8, "max_steps": max_steps, "batch_size": 16, "sample_steps": 2}
    return fit(runner.make(config), DigitsDataModule(batch_size=16), max_steps=max_steps, seed=0, label="flow")
