"""The flow-matching runners: ``training.flow.FlowMatchingModule`` (TinyUNet or TinyDiT velocity, EMA) on the digits.

Sampled with a fixed-step torchdiffeq solver (midpoint), so every setting costs
the same number of evaluations per sample except where the interval skips the
reference branch. Its :meth:`sample` clamps images to [−1, 1]. The EMA decays
faster than the module's default (0.995, not 0.999): after 1,500 steps a 0.999
average still holds 22 % of the random initial weights. ``flow_dit`` is the same on
:class:`~unified_guidance.networks.TinyDiT`, the attention network of the perturbation rows (:mod:`.dit`).
"""

from __future__ import annotations

from typing import Any

from torch import nn

from ...networks.default import default_net
from ...training.flow import FlowMatchingModule
from .base import Runner, objective
from .dit import DIT_CONFIG, PERTURBATION_SCALES, dit_methods


class FlowRunner(Runner):
    """Class-conditional velocity field on the linear path, condition dropout 0.1, midpoint ODE steps."""

    name = "flow"
    cost = 208.0
    methods: tuple[str, ...] = (
        "cfg", "rescale", "dynamic_threshold", "interval", "decay", "apg", "cfg_zero_star",
        "tcfg", "mambo_g", "fdg", "adaptive", "beta", "rectified_cfgpp",
    )  # fmt: skip

    def config(self, quick: bool) -> dict[str, Any]:
        return {
            "seed": 0, "max_steps": 1500 if quick else 4000, "batch_size": 128, "width": 32,
            "p_uncond": 0.1, "ema_decay": 0.995, "ema_warmup": True, "step_rng": True,
            "sample_method": "midpoint", "sample_steps": 12 if quick else 25,
        }  # fmt: skip

    def build(self, config: dict[str, Any]) -> nn.Module:
        gft = objective(config) != "cfg"  # GFT: the network takes β
        net = default_net((1, 8, 8), 10, config["width"], config.get("arch", "unet"), guidance_input=gft)
        return FlowMatchingModule(
            net, num_classes=10, p_uncond=config["p_uncond"], ema_decay=config["ema_decay"],
            ema_warmup=config["ema_warmup"], seed=config["seed"],
            sample_method=config["sample_method"], sample_steps=config["sample_steps"],
            clip=True,  # digits: clamp to their range [−1, 1]
            objective=objective(config),
        )  # fmt: skip

    def train(self, module: nn.Module, config: dict[str, Any], *, progress: bool = True) -> None:
        assert isinstance(module, FlowMatchingModule)  # build() made it
        self.fit_digits(module, config, progress=progress)


class FlowDiTRunner(FlowRunner):
    """:class:`FlowRunner` on a TinyDiT (2×2 patches, 16 tokens): plain CFG and the perturbation rows."""

    name = "flow_dit"
    cost = 116.0  # 104 + the guidance-free rows (12, estimated: docs/demo.md)
    guidance_free = True
    methods = dit_methods()
    method_scales = PERTURBATION_SCALES

    def config(self, quick: bool) -> dict[str, Any]:
        return super().config(quick) | DIT_CONFIG | {"max_steps": 1200 if quick else 4000}
