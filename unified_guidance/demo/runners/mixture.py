"""The stand-in runner: one exact Gaussian per digit class, sampled by DDIM (no network)."""

from __future__ import annotations

from typing import Any

from torch import nn

from ...data import load_digits_split
from ..standin import ClassGaussians, MixtureSampler
from .base import Runner


class MixtureRunner(Runner):
    """Moment-fitted class Gaussians on the training digits; every continuous method applies."""

    name = "mixture"
    cost = 5.0
    methods = (
        "cfg", "rescale", "dynamic_threshold", "interval", "decay", "apg", "cfg_zero_star",
        "tcfg", "mambo_g", "adaptive", "beta",
    )  # fmt: skip

    def config(self, quick: bool) -> dict[str, Any]:
        return {"seed": 0, "ridge": 0.01, "ddim_steps": 10 if quick else 25, "val_fraction": 0.2}

    def build(self, config: dict[str, Any]) -> nn.Module:
        return MixtureSampler(ClassGaussians(), steps=config["ddim_steps"], image_shape=(1, 8, 8))

    def train(self, module: nn.Module, config: dict[str, Any], *, progress: bool = True) -> None:
        assert isinstance(module, MixtureSampler) and isinstance(module.model, ClassGaussians)  # build() made it
        split = load_digits_split(config["val_fraction"], seed=0)
        module.model.fit(split.train_images, split.train_labels, ridge=config["ridge"])
