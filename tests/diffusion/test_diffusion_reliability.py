"""Diffusion sampling refuses what it cannot sample, and runs in half precision without collapsing time."""

import pytest
import torch

from unified_guidance.core import FunctionModel
from unified_guidance.diffusion import EpsModel, sample
from unified_guidance.flow import VelocityModel
from unified_guidance.networks import TinyUNet
from unified_guidance.schedules import LinearBetaSchedule


def tiny_unet(dtype: torch.dtype) -> TinyUNet:
    torch.manual_seed(0)
    net = TinyUNet(width=16, num_classes=3)
    torch.nn.init.normal_(net.out[-1].weight, std=0.1)  # zero-initialised output: make it say something
    return net.to(dtype).eval()


@pytest.mark.parametrize(("dtype", "tol"), [(torch.float16, 2e-2), (torch.bfloat16, 1e-1), (torch.float64, 1e-5)])
def test_tiny_unet_runs_in_half_and_double_precision(dtype, tol):
    x = torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    t, labels = torch.tensor([0.999, 0.3]), torch.tensor([0, 3])
    with torch.no_grad():
        out = tiny_unet(dtype)(x.to(dtype), t, labels)
        ref = tiny_unet(torch.float32)(x, t, labels)
    assert out.dtype == dtype
    torch.testing.assert_close(out.float(), ref, rtol=tol, atol=tol)


def test_a_bfloat16_sample_keeps_every_time_of_its_grid():
    seen = []

    def net(x, t, c):
        seen.append(float(t[0]))
        return torch.zeros_like(x)

    model = EpsModel(FunctionModel(net, space="eps"), null_cond=3)
    out, _ = sample(model, 1.0, (1, 2), torch.tensor([0]), steps=2000, noise=torch.zeros(1, 2, dtype=torch.bfloat16))
    assert out.dtype == torch.bfloat16 and len(set(seen)) == 2000  # a bfloat16 grid keeps 635 of them


def test_x_in_another_dtype_than_the_network_is_named():
    model = EpsModel(tiny_unet(torch.float32), null_cond=3, num_classes=3)
    message = r"x: expected torch.float32 on cpu \(the network's parameters\), got torch.float16"
    with pytest.raises(TypeError, match=message):
        sample(model, 2.0, None, torch.tensor([0]), steps=2, noise=torch.randn(1, 1, 8, 8).half())


def test_a_flow_model_is_refused_by_the_diffusion_sampler():
    flow = VelocityModel(lambda x, t, c: x, null_cond=0)
    message = r"model: expected a diffusion model.*got space 'velocity'; sample a flow model"
    with pytest.raises(ValueError, match=message):
        sample(flow, 2.0, (2, 2), torch.tensor([0, 1]), steps=3)


def test_a_zero_noise_schedule_is_refused():
    with pytest.raises(ValueError, match=r"beta_max: expected beta_max ≥ beta_min = 0.0 and > 0"):
        LinearBetaSchedule(beta_min=0.0, beta_max=0.0)
    with pytest.raises(ValueError, match=r"beta_min: expected a value in \[0.0, inf\], got -1"):
        LinearBetaSchedule(beta_min=-1.0)


def test_nan_noise_is_named_noise():
    model = EpsModel(FunctionModel(lambda x, t, c: x, space="eps"), null_cond=3)
    noise = torch.randn(2, 2)
    noise[0, 0] = float("inf")
    with pytest.raises(ValueError, match=r"noise: expected finite values, got 1 non-finite"):
        sample(model, 2.0, None, torch.tensor([0, 1]), steps=3, noise=noise)
