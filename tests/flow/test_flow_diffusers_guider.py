"""Our Guidance as a diffusers guider inside diffusers' modular SD3 pipeline.

Oracles: with plain CFG it equals diffusers' own ClassifierFreeGuidance there (same branch
count); with a σ interval and with APG it equals a hand-written loop over the transformer and
the scheduler (σ from ``scheduler.sigmas``, APG on x̂0 = x − σ·v and back).
"""

from __future__ import annotations

import pytest
import torch
from diffusers import FlowMatchEulerDiscreteScheduler
from diffusers.guiders import ClassifierFreeGuidance
from diffusers.modular_pipelines.modular_pipeline import BlockState
from diffusers.modular_pipelines.stable_diffusion_3.modular_blocks_stable_diffusion_3 import (
    StableDiffusion3T2ICoreDenoiseStep,
)
from flow_diffusers_models import BATCH, PIXELS, prompts, sd3_scheduler, sd3_transformer

import unified_guidance as ug
from unified_guidance.flow.guider import UnifiedGuider
from unified_guidance.guidance import APG, Guidance, ModelReference, Rescale
from unified_guidance.guidance.functional import apg
from unified_guidance.schedules import Interval

STEPS = 6


@pytest.fixture(scope="module")
def transformer():
    return sd3_transformer(torch.float32)


@pytest.fixture(scope="module")
def inputs():
    p = prompts(torch.float32, seed=2)
    return {k: p[k] for k in p if k != "flux_latents"}


def _modular(transformer, guider, inputs):
    """The modular SD3 text-to-image core (inputs, latents, σ schedule, denoise loop); rows per transformer call."""
    pipe = StableDiffusion3T2ICoreDenoiseStep().init_pipeline()
    pipe.update_components(transformer=transformer, scheduler=sd3_scheduler(), guider=guider)
    pipe.set_progress_bar_config(disable=True)
    rows: list[int] = []
    hook = transformer.register_forward_pre_hook(
        lambda m, a, kw: rows.append(kw["hidden_states"].shape[0]), with_kwargs=True
    )
    try:
        kwargs = {k: v for k, v in inputs.items() if k != "sd3_latents"}
        out = pipe(
            **kwargs,
            latents=inputs["sd3_latents"],
            height=PIXELS,
            width=PIXELS,
            num_inference_steps=STEPS,
            output="latents",
        )
    finally:
        hook.remove()
    return out, rows


def _hand_loop(transformer, inputs, combine):
    """Both branches at every step, ``combine(c, u, x, σ, i)`` → velocity, ``scheduler.step``."""
    scheduler = sd3_scheduler()
    scheduler.set_timesteps(STEPS)
    x = inputs["sd3_latents"]
    for i, k in enumerate(scheduler.timesteps):
        run = lambda emb, pooled, x=x, k=k: transformer(  # noqa: E731
            hidden_states=x,
            timestep=k.expand(BATCH),
            encoder_hidden_states=emb,
            pooled_projections=pooled,
            return_dict=False,
        )[0]
        c = run(inputs["prompt_embeds"], inputs["pooled_prompt_embeds"])
        u = run(inputs["negative_prompt_embeds"], inputs["negative_pooled_prompt_embeds"])
        x = scheduler.step(combine(c, u, x, float(scheduler.sigmas[i]), i), k, x, return_dict=False)[0]
    return x


@pytest.mark.parametrize("scale", [1.0, 4.0])
def test_cfg_guider_equals_diffusers_classifier_free_guidance(transformer, inputs, scale):
    theirs, their_rows = _modular(transformer, ClassifierFreeGuidance(guidance_scale=scale), inputs)
    guider = UnifiedGuider(Guidance(scale=scale), sd3_scheduler())
    ours, our_rows = _modular(transformer, guider, inputs)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-5)
    assert our_rows == their_rows == [BATCH] * STEPS * (1 if scale == 1.0 else 2)
    assert guider.stats.skipped_reference == (STEPS if scale == 1.0 else 0)


def test_rescale_on_the_velocity_equals_diffusers_guidance_rescale(transformer, inputs):
    """diffusers' guidance_rescale acts on the raw prediction (here the velocity): our Rescale in space
    "velocity" equals it; the default x0 space (Lin et al., arXiv 2305.08891) gives another result."""
    theirs, _ = _modular(transformer, ClassifierFreeGuidance(guidance_scale=4.0, guidance_rescale=0.7), inputs)
    on_v = Guidance(scale=4.0, post=(Rescale(0.7, space="velocity"),))
    ours, _ = _modular(transformer, UnifiedGuider(on_v, sd3_scheduler()), inputs)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-5)
    on_x0, _ = _modular(transformer, UnifiedGuider(Guidance(scale=4.0, post=(Rescale(0.7),)), sd3_scheduler()), inputs)
    assert (on_x0 - theirs).abs().max() > 1e-3


def test_sigma_interval_guider_equals_hand_loop_and_skips_branches(transformer, inputs):
    """Guidance for noise levels σ/(1 − σ) in (0.5, 3] only: τ ∈ [1/4, 2/3) on the rectified path."""
    lo, hi = ug.schedules.sigma_interval_to_progress(ug.schedules.RectifiedFlowPath(), 0.5, 3.0)
    guidance = Guidance(scale=Interval(5.0, lo=lo, hi=hi))
    ours, rows = _modular(transformer, UnifiedGuider(guidance, sd3_scheduler()), inputs)
    inside = lambda sigma: bool(guidance.references[0].schedule(1.0 - sigma) != 1.0)  # noqa: E731
    expected = _hand_loop(transformer, inputs, lambda c, u, x, sigma, i: u + 5.0 * (c - u) if inside(sigma) else c)
    torch.testing.assert_close(ours, expected, rtol=0, atol=1e-5)
    sched = sd3_scheduler()
    sched.set_timesteps(STEPS)
    guided_steps = sum(inside(float(s)) for s in sched.sigmas[:-1])
    assert 0 < guided_steps < STEPS
    assert len(rows) == STEPS + guided_steps  # one branch outside the interval, two inside


def test_apg_guider_runs_on_x0_and_equals_hand_loop(transformer, inputs):
    """APG (arXiv 2410.02416) with momentum and a norm cap, on x̂0 = x − σv, converted back by v = (x − x̂0)/σ."""
    rule = APG(eta=0.0, norm_threshold=2.0, momentum=-0.5)
    ours, _ = _modular(transformer, UnifiedGuider(Guidance(rule=rule, scale=5.0), sd3_scheduler()), inputs)
    state = {}

    def combine(c, u, x, sigma, i):
        x0, state["apg"] = apg(x - sigma * c, x - sigma * u, 5.0, eta=0.0, norm_threshold=2.0, momentum=-0.5,
                               state=state.get("apg"))  # fmt: skip
        return (x - x0) / sigma

    expected = _hand_loop(transformer, inputs, combine)
    torch.testing.assert_close(ours, expected, rtol=0, atol=1e-5)
    cfg, _ = _modular(transformer, ClassifierFreeGuidance(guidance_scale=5.0), inputs)
    assert (ours - cfg).abs().max() > 1e-2  # APG is not CFG here


def test_guider_state_and_errors(transformer, inputs):
    guider = UnifiedGuider(Guidance(scale=Interval(3.0, lo=0.5, hi=1.0)), sd3_scheduler())
    assert guider.num_conditions == 2  # before any step: both branches
    guider.set_state(step=0, num_inference_steps=4, timestep=torch.tensor(900.0))  # σ = 0.9, τ = 0.1
    assert guider.num_conditions == 1
    assert guider.new().num_conditions == 2 and guider.new().guidance is guider.guidance
    assert guider.new(enabled=False).num_conditions == 1
    fresh = guider.new()
    a, b, x = torch.zeros(1, 2), torch.ones(1, 2), torch.zeros(1, 3)
    state = BlockState(latents=x, prompt_embeds=a, negative_prompt_embeds=b)
    fields = {"hidden_states": "latents", "encoder_hidden_states": ("prompt_embeds", "negative_prompt_embeds")}
    cond_batch, uncond_batch = fresh.prepare_inputs_from_block_state(state, fields)
    assert cond_batch.encoder_hidden_states is a and uncond_batch.encoder_hidden_states is b
    assert uncond_batch.hidden_states is x
    with pytest.raises(
        ValueError,
        match="guidance: a reference model or perturbation, or further references, cannot run",
    ):
        reference = ModelReference(ug.flow.VelocityModel(torch.nn.Identity()))
        UnifiedGuider(Guidance(scale=2.0, reference=reference), sd3_scheduler())
    with pytest.raises(ValueError, match="scheduler: expected a diffusers flow-matching scheduler"):
        from diffusers import DDIMScheduler

        UnifiedGuider(Guidance(scale=2.0), DDIMScheduler())
    with pytest.raises(ValueError, match="latents_key: expected the guider input 'latents'"):
        UnifiedGuider(Guidance(scale=2.0), FlowMatchEulerDiscreteScheduler(), latents_key="latents").prepare_inputs(
            {"hidden_states": torch.zeros(1)}
        )
