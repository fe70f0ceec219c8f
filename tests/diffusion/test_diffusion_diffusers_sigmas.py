"""x0-space rules inside diffusers' σ schedulers convert with the scheduler's own σ at each step."""

from __future__ import annotations

import pytest
import torch
from diffusers import DDIMScheduler, EulerDiscreteScheduler, UNet2DModel

from unified_guidance import Guidance
from unified_guidance.compat.diffusers import ve_step_sigmas
from unified_guidance.diffusion.interop import sample_with_scheduler, wrap_unet
from unified_guidance.guidance import DynamicThreshold, PostProcess
from unified_guidance.guidance.functional import dynamic_threshold

NUM_CLASSES = 3
SCHEDULERS = {
    "euler": lambda: EulerDiscreteScheduler(num_train_timesteps=1000),
    "euler-karras": lambda: EulerDiscreteScheduler(num_train_timesteps=1000, use_karras_sigmas=True),
}


@pytest.fixture(scope="module")
def unet() -> UNet2DModel:
    torch.manual_seed(0)
    unet = UNet2DModel(
        sample_size=8, in_channels=1, out_channels=1, block_out_channels=(16, 32), layers_per_block=1,
        down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"),
        norm_num_groups=8, num_class_embeds=NUM_CLASSES + 1,
    )  # fmt: skip
    return unet.double().eval().requires_grad_(False)


class RecordX0(PostProcess):
    """Leaves the guided x0 as it is and keeps a copy: the engine's ε → x0 conversion, observed."""

    space = "x0"

    def __init__(self) -> None:
        self.seen: list[torch.Tensor] = []

    def __call__(self, guided, cond):
        self.seen.append(guided.clone())
        return guided


def _diffusers_x0(unet, scheduler, noise, labels, scale, steps):
    """diffusers' CFG loop, and at each step the scheduler's own x0 = x − σ·ε (Euler, ε-prediction)."""
    null = torch.full_like(labels, NUM_CLASSES)
    scheduler.set_timesteps(steps)
    x, out = noise * scheduler.init_noise_sigma, []
    for k in scheduler.timesteps:
        x_in = scheduler.scale_model_input(x, k)
        eps = torch.lerp(unet(x_in, k, class_labels=null).sample, unet(x_in, k, class_labels=labels).sample, scale)
        out.append(x - scheduler.sigmas[scheduler.step_index].double() * eps)
        x = scheduler.step(eps, k, x).prev_sample
    return out


@pytest.mark.parametrize("name", list(SCHEDULERS))
def test_x0_is_the_schedulers_own_at_every_step(unet, name):
    # Regression: ε → x0 used the ᾱ table interpolated log-linearly at fractional k, while
    # Euler interpolates σ linearly (default spacing) or uses Karras σ: x0 was off by ~1e-5.
    labels = torch.tensor([0, 1, 2])
    noise = torch.randn(3, 1, 8, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    model = wrap_unet(unet, SCHEDULERS[name](), null_cond=NUM_CLASSES, num_classes=NUM_CLASSES)
    record = RecordX0()
    sample_with_scheduler(
        model, Guidance(scale=3.0, post=(record,)), SCHEDULERS[name](), None, labels, steps=5, noise=noise
    )
    theirs = _diffusers_x0(unet, SCHEDULERS[name](), noise, labels, 3.0, 5)
    assert len(record.seen) == len(theirs) == 5
    for ours, x0 in zip(record.seen, theirs, strict=True):
        torch.testing.assert_close(ours, x0, rtol=1e-7, atol=1e-7)


def test_thresholding_inside_euler_equals_thresholding_the_schedulers_x0(unet):
    labels = torch.tensor([0, 2])
    noise = torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    model = wrap_unet(unet, SCHEDULERS["euler-karras"](), null_cond=NUM_CLASSES, num_classes=NUM_CLASSES)
    g = Guidance(scale=3.0, post=(DynamicThreshold(0.9),))
    ours, _ = sample_with_scheduler(model, g, SCHEDULERS["euler-karras"](), None, labels, steps=4, noise=noise)
    scheduler = SCHEDULERS["euler-karras"]()
    scheduler.set_timesteps(4)
    x = noise * scheduler.init_noise_sigma
    for k in scheduler.timesteps:
        x_in = scheduler.scale_model_input(x, k)
        null = torch.full_like(labels, NUM_CLASSES)
        eps = torch.lerp(unet(x_in, k, class_labels=null).sample, unet(x_in, k, class_labels=labels).sample, 3.0)
        sigma = scheduler.sigmas[scheduler.step_index].double()
        eps = (x - dynamic_threshold(x - sigma * eps, 0.9)) / sigma  # threshold x0 = x − σ·ε, back to ε
        x = scheduler.step(eps, k, x).prev_sample
    torch.testing.assert_close(ours, x, rtol=1e-5, atol=1e-5)  # the scheduler's step runs in float32


def test_step_sigmas_are_read_only_where_the_scheduler_keeps_them():
    euler = SCHEDULERS["euler-karras"]()
    euler.set_timesteps(4)
    torch.testing.assert_close(ve_step_sigmas(euler), euler.sigmas[:-1])
    ddim = DDIMScheduler()
    ddim.set_timesteps(4)
    assert ve_step_sigmas(ddim) is None  # integer timesteps on the ᾱ table: the table is exact


def test_nan_noise_is_named_noise(unet):
    model = wrap_unet(unet, SCHEDULERS["euler"](), null_cond=NUM_CLASSES, num_classes=NUM_CLASSES)
    noise = torch.zeros(1, 1, 8, 8, dtype=torch.float64)
    noise[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="noise: expected finite values, got 1 non-finite"):
        sample_with_scheduler(model, 2.0, SCHEDULERS["euler"](), None, torch.tensor([0]), steps=2, noise=noise)
