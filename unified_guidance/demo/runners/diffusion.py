"""The diffusion runner: ``training.diffusion.DiffusionModule`` on the digits.

LEAD: written against the shared contract before the diffusion package landed;
check the constructor's keyword names and the sampler's step count.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from ...training.data import DigitsDataModule
from ...training.diffusion import DiffusionModule
from ...training.fit import fit
from .base import Runner


class DiffusionRunner(Runner):
    """Class-conditional ε-prediction on the digits, sampled by the diffusion package's sampler."""

    name = "diffusion"
    methods = ("cfg", "rescale", "dynamic_threshold", "interval", "decay", "apg")

    def config(self, quick: bool) -> dict[str, Any]:
        return {"seed": 0, "max_steps": 1500 if quick else 4000, "batch_size": 128}

    def build(self, config: dict[str, Any]) -> nn.Module:
        return DiffusionModule()

    def train(self, module: nn.Module, config: dict[str, Any], *, progress: bool = True) -> None:
        data = DigitsDataModule(batch_size=config["batch_size"])
        fit(module, data, max_steps=config["max_steps"], seed=config["seed"], progress=progress)
