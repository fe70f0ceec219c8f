"""The flow-matching runner: ``training.flow.FlowModule`` on the digits.

LEAD: written against the shared contract before the flow package landed;
check the constructor's keyword names and the ODE solver settings.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from ...training.data import DigitsDataModule
from ...training.fit import fit
from ...training.flow import FlowModule
from .base import Runner


class FlowRunner(Runner):
    """Class-conditional velocity field on the digits, integrated with torchdiffeq."""

    name = "flow"
    methods = ("cfg", "rescale", "dynamic_threshold", "interval", "decay", "apg", "cfg_zero_star")

    def config(self, quick: bool) -> dict[str, Any]:
        return {"seed": 0, "max_steps": 1500 if quick else 4000, "batch_size": 128}

    def build(self, config: dict[str, Any]) -> nn.Module:
        return FlowModule()

    def train(self, module: nn.Module, config: dict[str, Any], *, progress: bool = True) -> None:
        data = DigitsDataModule(batch_size=config["batch_size"])
        fit(module, data, max_steps=config["max_steps"], seed=config["seed"], progress=progress)
