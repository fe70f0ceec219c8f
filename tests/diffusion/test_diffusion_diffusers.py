"""diffusers interop: our guided predictions in diffusers' own scheduler loops equal diffusers' own CFG."""

from __future__ import annotations

import pytest
import torch
from diffusers import (
    DDIMScheduler,
    DPMSolverMultistepScheduler,
    EulerDiscreteScheduler,
    FlowMatchEulerDiscreteScheduler,
    UNet2DConditionModel,
    UNet2DModel,
)
from diffusers.guiders import ClassifierFreeGuidance

from tests.diffusion.diffusers_unets import tiny_text_unet
from unified_guidance import Guidance
from unified_guidance.diffusion.interop import sample_with_scheduler, wrap_unet
from unified_guidance.guidance import Rescale
from unified_guidance.schedules import Interval

NUM_CLASSES = 3
SCHEDULERS = {
    "ddim": lambda: DDIMScheduler(num_train_timesteps=1000),
    "euler": lambda: EulerDiscreteScheduler(num_train_timesteps=1000),
    "dpm++": lambda: DPMSolverMultistepScheduler(num_train_timesteps=1000, algorithm_type="dpmsolver++"),
}


@pytest.fixture(scope="module")
def class_unet() -> UNet2DModel:
    torch.manual_seed(0)
    unet = UNet2DModel(
        sample_size=8, in_channels=1, out_channels=1, block_out_channels=(16, 32), layers_per_block=1,
        down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"),
        norm_num_groups=8, num_class_embeds=NUM_CLASSES + 1,
    )  # fmt: skip
    return unet.eval().requires_grad_(False)


@pytest.fixture(scope="module")
def text_unet() -> UNet2DConditionModel:
    return tiny_text_unet()


def _diffusers_cfg_loop(unet, scheduler, noise, cond_kwargs, uncond_kwargs, scale, steps, rescale=0.0):
    """The pipelines' loop: both branches, diffusers' own ClassifierFreeGuidance, scheduler.step."""
    guider = ClassifierFreeGuidance(guidance_scale=scale, guidance_rescale=rescale)
    scheduler.set_timesteps(steps)
    x = noise * scheduler.init_noise_sigma
    for k in scheduler.timesteps:
        x_in = scheduler.scale_model_input(x, k)
        cond = unet(x_in, k, **cond_kwargs).sample
        uncond = unet(x_in, k, **uncond_kwargs).sample
        x = scheduler.step(guider.forward(cond, uncond).pred, k, x).prev_sample
    return x


@pytest.mark.parametrize("name", list(SCHEDULERS))
def test_guided_sampling_equals_diffusers_cfg(class_unet, name):
    labels = torch.tensor([0, 1, 2, 1])
    null = torch.full_like(labels, NUM_CLASSES)
    noise = torch.randn(4, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    model = wrap_unet(class_unet, SCHEDULERS[name](), null_cond=NUM_CLASSES, num_classes=NUM_CLASSES)
    ours, stats = sample_with_scheduler(model, 4.0, SCHEDULERS[name](), None, labels, steps=6, noise=noise)
    theirs = _diffusers_cfg_loop(
        class_unet, SCHEDULERS[name](), noise, {"class_labels": labels}, {"class_labels": null}, 4.0, 6
    )
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-4)  # float32, 2B vs B + B batches
    assert model.stats.calls == 6 and model.stats.rows == 6 * 8  # one stacked forward per step
    assert (stats.nfe, stats.steps, stats.forward_calls, stats.forward_rows, stats.skipped_reference) == (
        6,
        6,
        6,
        48,
        0,
    )


def test_text_unet_with_null_embedding_and_rescale_equals_diffusers(text_unet):
    gen = torch.Generator().manual_seed(1)
    emb, noise = torch.randn(2, 5, 16, generator=gen), torch.randn(2, 1, 8, 8, generator=gen)
    null = torch.zeros(5, 16)
    model = wrap_unet(text_unet, DDIMScheduler(), null_cond=null)
    # diffusers' guidance_rescale acts on the noise prediction: our Rescale in space eps
    g = Guidance(scale=5.0, post=(Rescale(0.7, space="eps"),))
    ours, _ = sample_with_scheduler(model, g, DDIMScheduler(), None, emb, steps=4, noise=noise)
    uncond = {"encoder_hidden_states": null.expand(2, 5, 16)}
    theirs = _diffusers_cfg_loop(text_unet, DDIMScheduler(), noise, {"encoder_hidden_states": emb}, uncond, 5.0, 4, 0.7)
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-4)  # float32, 2B vs B + B batches


def test_interval_skips_the_reference_in_diffusers_loops(class_unet):
    """DDIM with 10 steps visits k = 900, 800, …, 0, i.e. τ = 1 − (k + 1)/1000 = 0.099 … 0.999;
    the interval [0.2, 0.8] holds k = 700 … 200 (6 steps)."""
    model = wrap_unet(class_unet, DDIMScheduler(), null_cond=NUM_CLASSES, num_classes=NUM_CLASSES)
    g = Guidance(scale=Interval(3.0, lo=0.2, hi=0.8))
    _, stats = sample_with_scheduler(model, g, DDIMScheduler(), (2, 1, 8, 8), torch.tensor([0, 1]), steps=10)
    assert (model.stats.calls, model.stats.rows) == (10, 6 * 4 + 4 * 2)
    assert (stats.forward_rows, stats.skipped_reference, stats.skipped_rows) == (6 * 4 + 4 * 2, 4, 4 * 2)


def test_seeded_generator_reproduces_stochastic_scheduler(class_unet):
    model = wrap_unet(class_unet, EulerDiscreteScheduler(), null_cond=NUM_CLASSES)
    run = lambda seed: sample_with_scheduler(  # noqa: E731
        model, 2.0, EulerDiscreteScheduler(), (2, 1, 8, 8), torch.tensor([0, 2]), steps=3,
        generator=torch.Generator().manual_seed(seed),
    ).samples  # fmt: skip
    torch.testing.assert_close(run(3), run(3), rtol=0, atol=0)
    assert not torch.allclose(run(3), run(4))


def test_bad_input_is_named(class_unet):
    with pytest.raises(ValueError, match="scheduler: expected a diffusers scheduler on an alphas_cumprod table"):
        wrap_unet(class_unet, FlowMatchEulerDiscreteScheduler(), null_cond=NUM_CLASSES)
    with pytest.raises(TypeError, match="unet: expected a diffusers UNet2DModel"):
        wrap_unet(torch.nn.Linear(2, 2), DDIMScheduler(), null_cond=NUM_CLASSES)
    model = wrap_unet(class_unet, DDIMScheduler(), null_cond=NUM_CLASSES, num_classes=NUM_CLASSES)
    with pytest.raises(ValueError, match="model: expected a model on the scheduler's 500-step"):
        sample_with_scheduler(model, 2.0, DDIMScheduler(num_train_timesteps=500), (1, 1, 8, 8), torch.tensor([0]))
    with pytest.raises(ValueError, match=r"x: expected samples of shape \(1, 8, 8\)"):
        sample_with_scheduler(model, 2.0, DDIMScheduler(), (1, 1, 4, 4), torch.tensor([0]), steps=1)
    with pytest.raises(TypeError, match="cond: expected integer class labels"):
        sample_with_scheduler(model, 2.0, DDIMScheduler(), (1, 1, 8, 8), torch.tensor([0.5]), steps=1)
    with pytest.raises(ValueError, match="steps"):
        sample_with_scheduler(model, 2.0, DDIMScheduler(), (1, 1, 8, 8), torch.tensor([0]), steps=0)
