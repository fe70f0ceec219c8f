"""The diffusion runners: ``training.diffusion.DiffusionModule`` (TinyUNet or TinyDiT ε-model, EMA) on the digits.

Its :meth:`sample` is DDIM with the module's ``sample_steps`` and returns images
already clamped to [−1, 1], so the report's ``mean_abs`` is measured after that clamp.
The EMA decays faster than the module's default (0.995, not 0.999): after 1,500
steps a 0.999 average still holds 22 % of the random initial weights (measured:
adherence at s = 1 was 0.27 from that EMA, 0.92 from the trained weights).
``diffusion_dit`` is the same on :class:`~unified_guidance.networks.TinyDiT`, the attention
network whose rows are CFG and the perturbation references (:mod:`.dit`).
"""

from __future__ import annotations

from typing import Any

from torch import nn

from ...training.diffusion import DiffusionModule
from .base import Runner, objective
from .dit import DIT_CONFIG, PERTURBATION_SCALES, dit_methods


class DiffusionRunner(Runner):
    """Class-conditional ε-prediction on the digits, condition dropout 0.1, sampled by DDIM."""

    name = "diffusion"
    cost = 223.0  # 210 + the guidance-free rows (13, estimated: docs/demo.md)
    guidance_free = True
    methods: tuple[str, ...] = (
        "cfg", "rescale", "dynamic_threshold", "interval", "decay", "apg",
        "tcfg", "mambo_g", "fdg", "adaptive", "beta", "cfgpp",
    )  # fmt: skip

    def config(self, quick: bool) -> dict[str, Any]:
        return {
            "seed": 0, "max_steps": 1500 if quick else 4000, "batch_size": 128, "width": 32,
            "p_uncond": 0.1, "ema_decay": 0.995, "ema_warmup": True, "sample_steps": 25 if quick else 50,
        }  # fmt: skip

    def build(self, config: dict[str, Any]) -> nn.Module:
        return DiffusionModule(
            width=config["width"], arch=config.get("arch", "unet"), p_uncond=config["p_uncond"],
            ema_decay=config["ema_decay"], ema_warmup=config["ema_warmup"], sample_steps=config["sample_steps"],
            seed=config["seed"], clip=True,  # digits: clamp to their range [−1, 1]
            objective=objective(config),
        )  # fmt: skip

    def train(self, module: nn.Module, config: dict[str, Any], *, progress: bool = True) -> None:
        assert isinstance(module, DiffusionModule)  # build() made it
        self.fit_digits(module, config, progress=progress)


class DiffusionDiTRunner(DiffusionRunner):
    """:class:`DiffusionRunner` on a TinyDiT (2×2 patches, 16 tokens): plain CFG and the perturbation rows."""

    name = "diffusion_dit"
    cost = 105.0
    guidance_free = False  # the DiT's guidance-free rows are flow_dit's
    methods = dit_methods()
    method_scales = PERTURBATION_SCALES

    def config(self, quick: bool) -> dict[str, Any]:
        return super().config(quick) | DIT_CONFIG | {"max_steps": 1200 if quick else 4000}
