"""The per-paradigm runner: build a model, train it, say which methods apply.

A runner knows nothing of sweeps, metrics or files. It builds the paradigm's
module — anything with ``.model`` (a ConditionalModel counting forward rows)
and ``.sample(labels, guidance, *, generator=None) -> (B, 1, 8, 8)`` — and trains
it in place. The demo caches the trained weights under the runner's
:meth:`Runner.config` and samples through ``Trainer.predict``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, cast

import torch
from torch import nn

from ...training.data import DigitsDataModule
from ...training.fit import fit
from ..sweep import MitigationParams


class Runner(ABC):
    """One paradigm in the demo.

    Attributes:
        name: the paradigm's name in the report (``"diffusion"``, ``"flow"``, ``"autoregressive"``).
        methods: the sweep methods that apply to it (``"cfg"`` and mitigations of
            :data:`~unified_guidance.demo.sweep.METHODS`).
        params: mitigation hyper-parameters for this paradigm.
        method_scales: scales of a method other than the high scales (method → scales).
        guidance_free: the demo also fine-tunes its model into a guidance-free one (GFT) and sweeps it
            (:mod:`~unified_guidance.demo.guidance_free`); :meth:`build` then honours ``config["objective"]``.
        cost: rough seconds of its quick run (training, sweep, metrics) on one thread beside
            another part, as measured on the project's 2-core machine: with ``jobs > 1`` the
            costliest parts start first.
    """

    name: str
    methods: tuple[str, ...]
    params: MitigationParams = MitigationParams()
    method_scales: Mapping[str, tuple[float, ...]] = MappingProxyType({})
    cost: float = 100.0
    guidance_free: bool = False

    @abstractmethod
    def config(self, quick: bool) -> dict[str, Any]:
        """Everything that determines the trained weights (JSON values): the cache key.

        Must hold ``"seed"``; change anything here and the cache retrains.
        """

    @abstractmethod
    def build(self, config: dict[str, Any]) -> nn.Module:
        """A fresh, untrained module (weights initialised from the global RNG), trained with
        ``config["objective"]`` (absent: ``"cfg"``, condition dropout)."""

    @abstractmethod
    def train(self, module: nn.Module, config: dict[str, Any], *, progress: bool = True) -> None:
        """Train ``module`` in place for the configured steps."""

    def fit_digits(self, module: nn.Module, config: Mapping[str, Any], *, progress: bool = True) -> None:
        """Train ``module`` on the digits for ``config["max_steps"]`` steps of ``config["batch_size"]``,
        seeded by ``config["seed"]``; its progress shows :meth:`label`."""
        data = DigitsDataModule(batch_size=config["batch_size"])
        fit(cast(Any, module), data, max_steps=config["max_steps"], seed=config["seed"], progress=progress,
            label=self.label(config))  # fmt: skip

    def label(self, config: Mapping[str, Any]) -> str:
        """The name its training's progress shows: the paradigm's, with the objective where not CFG
        (``"diffusion (gft): training"``)."""
        return self.name if objective(config) == "cfg" else f"{self.name} ({objective(config)})"

    def make(self, config: dict[str, Any]) -> nn.Module:
        """:meth:`build` with the RNG seeded from ``config["seed"]`` (same weights on every run)."""
        with torch.random.fork_rng():
            torch.manual_seed(config["seed"])
            return self.build(config)


def objective(config: Mapping[str, Any]) -> str:
    """The training objective of a runner's configuration (``"cfg"`` where it names none, as every
    parent model's does: their cache keys stay as they were)."""
    return str(config.get("objective", "cfg"))
