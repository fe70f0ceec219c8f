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
from typing import Any

import torch
from torch import nn

from ..sweep import MitigationParams


class Runner(ABC):
    """One paradigm in the demo.

    Attributes:
        name: the paradigm's name in the report (``"diffusion"``, ``"flow"``, ``"autoregressive"``).
        methods: the sweep methods that apply to it (``"cfg"`` and mitigations of
            :data:`~unified_guidance.demo.sweep.METHODS`).
        params: mitigation hyper-parameters for this paradigm.
        method_scales: scales of a method other than the high scales (method → scales).
        cost: rough seconds of its quick run (training, sweep, metrics) on one thread beside
            another part, as measured on the project's 2-core machine: with ``jobs > 1`` the
            costliest parts start first.
    """

    name: str
    methods: tuple[str, ...]
    params: MitigationParams = MitigationParams()
    method_scales: Mapping[str, tuple[float, ...]] = MappingProxyType({})
    cost: float = 100.0

    @abstractmethod
    def config(self, quick: bool) -> dict[str, Any]:
        """Everything that determines the trained weights (JSON values): the cache key.

        Must hold ``"seed"``; change anything here and the cache retrains.
        """

    @abstractmethod
    def build(self, config: dict[str, Any]) -> nn.Module:
        """A fresh, untrained module (weights initialised from the global RNG)."""

    @abstractmethod
    def train(self, module: nn.Module, config: dict[str, Any], *, progress: bool = True) -> None:
        """Train ``module`` in place for the configured steps."""

    def make(self, config: dict[str, Any]) -> nn.Module:
        """:meth:`build` with the RNG seeded from ``config["seed"]`` (same weights on every run)."""
        with torch.random.fork_rng():
            torch.manual_seed(config["seed"])
            return self.build(config)
