"""The autoregressive runner: ``training.autoregressive.ARModule`` on digit pixel tokens.

LEAD: written against the shared contract before the AR package landed;
check the constructor's keyword names. Only scale schedules apply to logits
(x0-space post-processes and APG/CFG-Zero* have no token counterpart here).
"""

from __future__ import annotations

from typing import Any

from torch import nn

from ...training.autoregressive import ARModule
from ...training.data import DigitsDataModule
from ...training.fit import fit
from .base import Runner


class ARRunner(Runner):
    """A tiny GPT over 64 pixel tokens (17 grey levels) with a class prompt."""

    name = "autoregressive"
    methods = ("cfg", "interval", "decay")

    def config(self, quick: bool) -> dict[str, Any]:
        return {"seed": 0, "max_steps": 1500 if quick else 4000, "batch_size": 128}

    def build(self, config: dict[str, Any]) -> nn.Module:
        return ARModule()

    def train(self, module: nn.Module, config: dict[str, Any], *, progress: bool = True) -> None:
        data = DigitsDataModule(batch_size=config["batch_size"])
        fit(module, data, max_steps=config["max_steps"], seed=config["seed"], progress=progress)
