"""diffusers flow transformers as velocity models: our guided sampling equals the SD3, Flux and Wan pipelines.

Oracles: ``StableDiffusion3Pipeline(guidance_scale=s)`` and ``FluxPipeline(true_cfg_scale=s)`` with
a negative prompt, built locally with random weights, prompt embeddings passed directly,
``output_type="latent"``. Ours runs (a) the scheduler's own loop and (b) torchdiffeq's Euler on
the scheduler's σ grid. In float64 the pipelines' ``scheduler.step`` still rounds the state to
float32 each step (diffusers upcasts "to avoid precision issues" by casting to float32), so (a),
which calls the same step, agrees to 1e-10, and (b), which integrates in float64, to that rounding.
"""

from __future__ import annotations

import pytest
import torch
from diffusers import DDIMScheduler, FlowMatchEulerDiscreteScheduler, FlowMatchHeunDiscreteScheduler, FluxPipeline
from flow_diffusers_models import (
    BATCH,
    PIXELS,
    SD3_LATENTS,
    TOKENS,
    flux_pipeline,
    flux_scheduler,
    flux_transformer,
    prompts,
    sd3_pipeline,
    sd3_scheduler,
    sd3_transformer,
    wan_pipeline,
    wan_transformer,
)

import unified_guidance as ug
from unified_guidance import Conditions, Guidance
from unified_guidance.flow.interop import (
    sample_with_scheduler,
    scheduler_sigmas,
    sigma_grid,
    wrap_transformer,
)
from unified_guidance.schedules import Interval

STEPS = 4
TOL = {torch.float32: 1e-5, torch.float64: 1e-10}
EULER_TOL = {torch.float32: 1e-5, torch.float64: 1e-6}  # float64: the pipeline's float32 state (module docstring)
DTYPES = [torch.float32, torch.float64]


@pytest.fixture(scope="module")
def sd3():
    return {dtype: sd3_transformer(dtype) for dtype in DTYPES}


@pytest.fixture(scope="module")
def flux():
    return {dtype: flux_transformer(dtype) for dtype in DTYPES}


def _sd3_model(transformer, p):
    null = {k: v[0] for k, v in _negative(p).items()}  # one sample's ∅
    return wrap_transformer(transformer, sd3_scheduler(), null_cond=null)


def _sd3_cond(p):
    return {"encoder_hidden_states": p["prompt_embeds"], "pooled_projections": p["pooled_prompt_embeds"]}


def _negative(p):
    return {
        "encoder_hidden_states": p["negative_prompt_embeds"],
        "pooled_projections": p["negative_pooled_prompt_embeds"],
    }


def _euler_on_grid(model, guidance, scheduler, noise, cond):
    sigmas = scheduler_sigmas(model, scheduler, STEPS, noise.shape)
    t_span = (float(sigmas[0]), float(sigmas[-1]))
    return ug.flow.sample(model, guidance, noise, cond, method="euler", t_span=t_span, options=sigma_grid(sigmas))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("scale", [1.0, 3.0, 7.0])
def test_sd3_pipeline_equals_scheduler_loop_and_euler(sd3, dtype, scale):
    transformer, p = sd3[dtype], prompts(dtype)
    p["negative_prompt_embeds"] = p["negative_prompt_embeds"][:1].expand(BATCH, -1, -1)  # one ∅ for every row
    p["negative_pooled_prompt_embeds"] = p["negative_pooled_prompt_embeds"][:1].expand(BATCH, -1)
    latents = p.pop("sd3_latents")
    del p["flux_latents"]
    pipe = sd3_pipeline(transformer, sd3_scheduler())
    reference = pipe(**p, latents=latents, height=PIXELS, width=PIXELS, num_inference_steps=STEPS,
                     guidance_scale=scale, output_type="latent").images  # fmt: skip
    model = _sd3_model(transformer, p)
    loop, loop_stats = sample_with_scheduler(
        model, scale, sd3_scheduler(), None, _sd3_cond(p), steps=STEPS, noise=latents
    )
    rows = model.stats.rows
    euler, stats = _euler_on_grid(model, scale, sd3_scheduler(), latents, _sd3_cond(p))
    torch.testing.assert_close(loop, reference, rtol=0, atol=TOL[dtype])
    torch.testing.assert_close(euler, reference, rtol=0, atol=EULER_TOL[dtype])
    if dtype == torch.float32:
        assert torch.equal(euler, loop)  # torchdiffeq's Euler on the σ grid is the scheduler's step, bit for bit
    guided_rows = BATCH if scale == 1.0 else 2 * BATCH  # s = 1: the reference branch is skipped, and counted
    assert rows == STEPS * guided_rows
    assert (stats.nfe, stats.forward_rows) == (STEPS, STEPS * guided_rows)
    assert stats.skipped_reference == (STEPS if scale == 1.0 else 0)
    assert (loop_stats.nfe, loop_stats.steps, loop_stats.forward_rows) == (STEPS, STEPS, rows)
    assert loop_stats.skipped_reference == stats.skipped_reference


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("scale", [1.0, 2.0, 5.0])
def test_flux_true_cfg_with_negative_prompt_equals_pipeline(flux, dtype, scale):
    transformer, p = flux[dtype], prompts(dtype, seed=1)
    latents = p.pop("flux_latents")
    del p["sd3_latents"]
    pipe = flux_pipeline(transformer, flux_scheduler())
    reference = pipe(**p, latents=latents, height=PIXELS, width=PIXELS, num_inference_steps=STEPS,
                     guidance_scale=3.5, true_cfg_scale=scale, output_type="latent").images  # fmt: skip
    shared = {"img_ids": FluxPipeline._prepare_latent_image_ids(BATCH, 4, 4, "cpu", dtype),
              "txt_ids": torch.zeros(TOKENS, 3, dtype=dtype)}  # fmt: skip
    model = wrap_transformer(transformer, flux_scheduler(), null_cond=None, inputs=shared)
    distilled = torch.full((BATCH,), 3.5)  # Flux's guidance embedding: a model input, not our guidance
    cond = Conditions.single({**_sd3_cond(p), "guidance": distilled}, negative={**_negative(p), "guidance": distilled})
    loop, _ = sample_with_scheduler(model, scale, flux_scheduler(), None, cond, steps=STEPS, noise=latents)
    euler, stats = _euler_on_grid(model, scale, flux_scheduler(), latents, cond)
    torch.testing.assert_close(loop, reference, rtol=0, atol=TOL[dtype])
    torch.testing.assert_close(euler, reference, rtol=0, atol=EULER_TOL[dtype])
    assert stats.forward_rows == STEPS * (BATCH if scale == 1.0 else 2 * BATCH)  # one 2B forward per step


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("scale", [1.0, 4.0])
def test_wan_video_transformer_equals_wan_pipeline(dtype, scale):
    """The mechanism beyond images: WanTransformer3DModel on (B, C, F, H, W) latents, timestep σ·N, no μ."""
    transformer, p = wan_transformer(dtype), prompts(dtype, seed=3)
    # one latent frame; float32 values, as WanPipeline.prepare_latents casts given latents to float32 at any dtype
    latents = p["sd3_latents"][:, :, None].float().to(dtype)
    pipe = wan_pipeline(transformer, sd3_scheduler())
    reference = pipe(prompt_embeds=p["prompt_embeds"], negative_prompt_embeds=p["negative_prompt_embeds"],
                     latents=latents, height=PIXELS, width=PIXELS, num_frames=1, num_inference_steps=STEPS,
                     guidance_scale=scale, output_type="latent").frames  # fmt: skip
    model = wrap_transformer(transformer, sd3_scheduler(), null_cond=None)
    cond = Conditions.single(
        {"encoder_hidden_states": p["prompt_embeds"]}, negative={"encoder_hidden_states": p["negative_prompt_embeds"]}
    )
    ours, _ = sample_with_scheduler(model, scale, sd3_scheduler(), None, cond, steps=STEPS, noise=latents)
    torch.testing.assert_close(ours, reference, rtol=0, atol=TOL[dtype])
    assert model.stats.rows == STEPS * (BATCH if scale == 1.0 else 2 * BATCH)


def test_flux_schedule_is_the_pipelines_shifted_one(flux):
    """Flux passes σ = linspace(1, 1/n, n) and μ(L) = 0.5 + (1.15 − 0.5)(L − 256)/(4096 − 256) for L image tokens."""
    model = wrap_transformer(flux[torch.float32], flux_scheduler(), null_cond=None)
    sigmas = scheduler_sigmas(model, flux_scheduler(), STEPS, (BATCH, 16, 16))
    mu = 0.5 + (1.15 - 0.5) * (16 - 256) / (4096 - 256)
    base = torch.linspace(1.0, 1.0 / STEPS, STEPS, dtype=torch.float64)
    expected = torch.exp(torch.tensor(mu)) / (torch.exp(torch.tensor(mu)) + (1 / base - 1))  # time_shift, exponent 1
    torch.testing.assert_close(sigmas[:-1], expected, rtol=1e-6, atol=1e-7)  # float32 σ in the scheduler
    assert sigmas[-1] == 0.0


def test_heun_scheduler_equals_sd3_pipeline_with_heun(sd3):
    """FlowMatchHeun evaluates twice per step but the last (2·steps − 1 evaluations); the SD3
    pipeline runs its CFG at each of them, as our loop does."""
    transformer, p = sd3[torch.float32], prompts(torch.float32)
    latents = p.pop("sd3_latents")
    del p["flux_latents"]
    heun = lambda: FlowMatchHeunDiscreteScheduler(shift=3.0)  # noqa: E731
    pipe = sd3_pipeline(transformer, heun())
    reference = pipe(**p, latents=latents, height=PIXELS, width=PIXELS, num_inference_steps=3,
                     guidance_scale=4.0, output_type="latent").images  # fmt: skip
    model = wrap_transformer(transformer, heun(), null_cond=None)
    cond = Conditions.single(_sd3_cond(p), negative=_negative(p))
    ours, stats = sample_with_scheduler(model, 4.0, heun(), None, cond, steps=3, noise=latents)
    torch.testing.assert_close(ours, reference, rtol=0, atol=1e-5)
    assert model.stats.calls == 2 * 3 - 1
    assert (stats.nfe, stats.steps, stats.forward_calls) == (2 * 3 - 1, 3, 2 * 3 - 1)


def test_dopri5_interval_jump_points_and_cost(sd3):
    """Adaptive dopri5 over the tiny transformer: the interval's ends are jump points (in σ = 1 − τ),
    NFE, steps and rows are reported, and the interval costs fewer rows than a constant scale."""
    transformer, p = sd3[torch.float32], prompts(torch.float32)
    model, cond = _sd3_model(transformer, p), _sd3_cond(p)
    kwargs = {"method": "dopri5", "rtol": 1e-5, "atol": 1e-5}
    _, constant = ug.flow.sample(model, Guidance(scale=3.0), p["sd3_latents"], cond, **kwargs)
    _, interval = ug.flow.sample(model, Guidance(scale=Interval(3.0, lo=0.3, hi=0.7)), p["sd3_latents"], cond, **kwargs)
    assert interval.jump_t == pytest.approx((0.3, 0.7))
    assert interval.nfe > 0 and interval.accepted_steps > 0 and interval.rejected_steps is not None
    assert interval.skipped_reference > 0
    assert interval.forward_rows == 2 * BATCH * interval.nfe - BATCH * interval.skipped_reference
    assert constant.forward_rows == 2 * BATCH * constant.nfe
    assert interval.forward_rows < constant.forward_rows


def test_bad_input_is_named(sd3, flux):
    assert (ug.flow.wrap_transformer, ug.flow.sample_with_scheduler) == (wrap_transformer, sample_with_scheduler)
    transformer = sd3[torch.float32]
    with pytest.raises(ValueError, match="scheduler: expected a diffusers flow-matching scheduler"):
        wrap_transformer(transformer, DDIMScheduler(), null_cond=None)
    with pytest.raises(ValueError, match="family: Linear is not one of"):
        wrap_transformer(torch.nn.Linear(2, 2), sd3_scheduler(), null_cond=None)
    with pytest.raises(ValueError, match="family: unknown family 'hunyuan'"):
        wrap_transformer(transformer, sd3_scheduler(), null_cond=None, family="hunyuan")
    with pytest.raises(ValueError, match=r"inputs: SD3Transformer2DModel\.forward takes no shared input img_ids"):
        wrap_transformer(transformer, sd3_scheduler(), null_cond=None, inputs={"img_ids": torch.zeros(1, 3)})
    with pytest.raises(TypeError, match="null_cond: expected one sample's condition as a dict"):
        wrap_transformer(transformer, sd3_scheduler(), null_cond=torch.zeros(3))
    model = wrap_transformer(transformer, sd3_scheduler(), null_cond=None)
    x = torch.zeros(SD3_LATENTS)
    with pytest.raises(ValueError, match=r"cond: SD3Transformer2DModel\.forward takes no condition input prompt"):
        model(x, 0.5, {"prompt": torch.zeros(BATCH, 3)})
    with pytest.raises(ValueError, match="steps: expected an integer ≥ 1, got 0"):
        sample_with_scheduler(model, 1.0, sd3_scheduler(), SD3_LATENTS, {}, steps=0)
    with pytest.raises(ValueError, match=r"scheduler: expected num_train_timesteps=1000 .* got 500"):
        sample_with_scheduler(model, 1.0, FlowMatchEulerDiscreteScheduler(500), SD3_LATENTS, {}, steps=1)
    flux_model = wrap_transformer(flux[torch.float32], flux_scheduler(), null_cond=None)
    with pytest.raises(
        ValueError, match=r"scheduler: FlowMatchHeunDiscreteScheduler\.set_timesteps takes no sigmas, mu"
    ):
        scheduler_sigmas(flux_model, FlowMatchHeunDiscreteScheduler(), STEPS, (BATCH, 16, 16))
    with pytest.raises(TypeError, match="model: expected a model from wrap_transformer"):
        sample_with_scheduler(ug.flow.VelocityModel(torch.nn.Identity()), 1.0, sd3_scheduler(), (1, 2), {}, steps=1)
