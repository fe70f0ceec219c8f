"""Diffusion: ε/x0/v-predicting networks under guidance, DDIM/DDPM/CFG++ sampling, the denoising loss.

    model = ug.diffusion.EpsModel(net, null_cond=10, num_classes=10)
    x, stats = ug.diffusion.sample(model, ug.Guidance(scale=3.0), (16, 1, 8, 8), labels, steps=50)

``unified_guidance.diffusion.interop`` (optional extra ``diffusers``)
wraps diffusers UNets and drives diffusers schedulers with guided predictions.
"""

from .loss import WEIGHTINGS, diffusion_loss, q_sample, sample_times
from .model import PREDICTIONS, EpsModel, check_labels
from .sample import METHODS, STEPS, ddim_sigma, ddim_step, ddpm_step, sample
from .time import AlphasCumprodPath, default_t_max, discrete_to_time, time_grid, time_to_discrete

__all__ = [
    "METHODS",
    "PREDICTIONS",
    "STEPS",
    "WEIGHTINGS",
    "AlphasCumprodPath",
    "EpsModel",
    "check_labels",
    "ddim_sigma",
    "ddim_step",
    "ddpm_step",
    "default_t_max",
    "diffusion_loss",
    "discrete_to_time",
    "q_sample",
    "sample",
    "sample_times",
    "time_grid",
    "time_to_discrete",
]
