"""Half precision: the network runs in float16/bfloat16, every sampler keeps its state, times and
steps in float32 (core.shapes.Precision), so long runs stay within a bound of the float32 run.

Oracle: the same MLPNet in float32. The bound (relative L2 error of the batch: 0.3 % float16,
1 % bfloat16) covers what a half-precision network itself changes (its weights and activations
rounded; measured up to 0.2 % / 0.4 %), not what a half-precision state lost before at these
settings: 500 Euler steps 7.5 % / 31 %, dopri5 stopped at t = nan in float16 and was 5 % off in
bfloat16, 250 DDIM steps 2.2 % / 12 %, the short runs 3–7 % in bfloat16.
"""

import pytest
import torch

from unified_guidance.diffusion import EpsModel
from unified_guidance.diffusion import sample as diffusion_sample
from unified_guidance.flow import VelocityModel, log_likelihood, trajectory
from unified_guidance.flow import sample as flow_sample
from unified_guidance.networks import MLPNet

HALF = [torch.float16, torch.bfloat16]
BOUND = {torch.float16: 3e-3, torch.bfloat16: 1e-2}  # relative L2 error against the float32 run
NOISE = torch.randn(16, 2, generator=torch.Generator().manual_seed(1))
LABELS = torch.randint(0, 3, (16,), generator=torch.Generator().manual_seed(2))


def mlp(dtype: torch.dtype) -> MLPNet:
    torch.manual_seed(0)
    return MLPNet(dim=2, num_classes=3, width=32, depth=2).to(dtype)


def relative_error(out: torch.Tensor, ref: torch.Tensor) -> float:
    out, ref = out.detach().double(), ref.detach().double()
    return float((out - ref).norm() / ref.norm())


def assert_close_to_float32(run, dtype: torch.dtype) -> None:
    out, ref = run(dtype), run(torch.float32)
    assert out.dtype == dtype and bool(torch.isfinite(out).all())
    assert relative_error(out, ref) < BOUND[dtype]


FLOW_RUNS = {
    "euler-500": dict(method="euler", steps=500),
    "midpoint-50": dict(method="midpoint", steps=50),
    "heun3-50": dict(method="heun3", steps=50),  # heun2 is not in the oldest torchdiffeq supported
    "rectified_cfgpp-50": dict(method="rectified_cfgpp", steps=50),
}


@pytest.mark.parametrize("dtype", HALF)
@pytest.mark.parametrize("run", FLOW_RUNS)
def test_flow_samplers_in_half_precision_stay_close_to_float32(run, dtype):
    def sample(dt):
        model = VelocityModel(mlp(dt), null_cond=3)
        return flow_sample(model, 3.0, NOISE.to(dt), LABELS, **FLOW_RUNS[run]).samples

    assert_close_to_float32(sample, dtype)


@pytest.mark.parametrize("dtype", HALF)
def test_dopri5_in_half_precision_finishes_close_to_float32_with_about_its_steps(dtype):
    # Before, the float16 state made dopri5's step control fail: "non-finite values (…) at t=nan".
    half, full = (
        flow_sample(VelocityModel(mlp(dt), null_cond=3), 3.0, NOISE.to(dt), LABELS, method="dopri5")
        for dt in (dtype, torch.float32)
    )
    assert half.samples.dtype == dtype
    assert relative_error(half.samples, full.samples) < BOUND[dtype]
    assert half.stats.nfe <= 1.25 * full.stats.nfe  # the solver does not fight half-precision noise


@pytest.mark.parametrize("dtype", HALF)
def test_trajectory_and_likelihood_in_half_precision_stay_close_to_float32(dtype):
    def states(dt):
        model = VelocityModel(mlp(dt), null_cond=3)
        return trajectory(model, 3.0, NOISE.to(dt), LABELS, times=[0.0, 0.5, 1.0], method="euler", steps=100).samples

    def log_prob(dt):
        model = VelocityModel(mlp(dt), null_cond=3)
        return log_likelihood(model, 3.0, NOISE.to(dt), LABELS, method="euler", steps=50).log_prob

    assert_close_to_float32(states, dtype)
    assert_close_to_float32(log_prob, dtype)


DIFFUSION_RUNS = {
    "ddim-250": dict(method="ddim", steps=250, scale=3.0),
    "ddpm-100": dict(method="ddpm", steps=100, scale=3.0),
    "ddim_cfgpp-100": dict(method="ddim_cfgpp", steps=100, scale=0.8),  # CFG++'s λ ∈ [0, 1]
    "ddpm_cfgpp-100": dict(method="ddpm_cfgpp", steps=100, scale=0.8),
}


@pytest.mark.parametrize("dtype", HALF)
@pytest.mark.parametrize("run", DIFFUSION_RUNS)
def test_diffusion_samplers_in_half_precision_stay_close_to_float32(run, dtype):
    settings = dict(DIFFUSION_RUNS[run])
    scale = settings.pop("scale")

    def sample(dt):
        # v-prediction: an untrained ε-network's x̂0 = (x − σε̂)/α is meaningless at α ≈ 0
        model = EpsModel(mlp(dt), null_cond=3, num_classes=3, prediction="v")
        generator = torch.Generator().manual_seed(5)  # the ancestral noise is drawn in float32 for every dtype
        return diffusion_sample(model, scale, None, LABELS, noise=NOISE.to(dt), generator=generator, **settings).samples

    assert_close_to_float32(sample, dtype)


@pytest.mark.parametrize("paradigm", ["diffusion", "flow"])
def test_the_network_runs_in_half_and_the_sampler_in_float32(paradigm):
    seen = []
    net = mlp(torch.bfloat16)
    net.register_forward_hook(lambda module, args, out: seen.append((args[0].dtype, out.dtype)))
    noise = NOISE.to(torch.bfloat16)
    if paradigm == "flow":
        out, _ = flow_sample(VelocityModel(net, null_cond=3), 2.0, noise, LABELS, method="euler", steps=3)
    else:
        out, _ = diffusion_sample(EpsModel(net, null_cond=3, num_classes=3), 2.0, None, LABELS, noise=noise, steps=3)
    assert out.dtype == torch.bfloat16
    assert seen == [(torch.bfloat16, torch.bfloat16)] * 3  # one stacked forward a step, in the network's dtype
