"""The autoregressive runner: ``training.autoregressive.TokenARModule`` on digit pixel tokens.

Only token methods apply here (x0-space post-processes, APG and CFG-Zero* have
no token counterpart): plain CFG, the guidance interval over token positions,
the decaying schedule and contrastive decoding's plausibility mask.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from ...training.autoregressive import TokenARModule
from .base import Runner, objective


class ARRunner(Runner):
    """A tiny GPT-2 over 64 pixel tokens (17 grey levels) after a class token (∅ = the null token)."""

    name = "autoregressive"
    cost = 281.0  # 250 + the guidance-free rows (31, estimated: docs/demo.md)
    guidance_free = True
    methods = ("cfg", "interval", "decay", "plausibility", "beta")

    def config(self, quick: bool) -> dict[str, Any]:
        return {
            "seed": 0, "max_steps": 1500 if quick else 3000, "batch_size": 64, "width": 64, "layers": 4, "heads": 4,
            "activation": "gelu",
            "step_rng": True,  # condition dropout drawn from the global step (exact resume)
        }  # fmt: skip

    def build(self, config: dict[str, Any]) -> nn.Module:
        return TokenARModule(
            width=config["width"], layers=config["layers"], heads=config["heads"], p_uncond=0.1, seed=config["seed"],
            activation=config["activation"], objective=objective(config),
        )  # fmt: skip

    def train(self, module: nn.Module, config: dict[str, Any], *, progress: bool = True) -> None:
        assert isinstance(module, TokenARModule)  # build() made it
        self.fit_digits(module, config, progress=progress)
