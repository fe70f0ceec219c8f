"""Diffusion: ε/x0/v-predicting networks under guidance, DDIM/DDPM/CFG++ sampling, the denoising loss.

    model = ug.diffusion.EpsModel(net, null_cond=10, num_classes=10)
    x, stats = ug.diffusion.sample(model, ug.Guidance(scale=3.0), (16, 1, 8, 8), labels, steps=50)

``unified_guidance.diffusion.interop`` (optional extra ``diffusers``)
wraps diffusers UNets and drives diffusers schedulers with guided predictions.
"""

from .loss import diffusion_loss
from .model import EpsModel
from .sample import METHODS, sample
from .time import AlphasCumprodPath, time_grid

__all__ = [
    "METHODS",
    "AlphasCumprodPath",
    "EpsModel",
    "diffusion_loss",
    "sample",
    "time_grid",
]
