"""The conditional flow-matching loss: its minimiser is the marginal velocity; time samplers; dropout."""

import math

import pytest
import torch

from unified_guidance.flow import VelocityModel, flow_matching_loss
from unified_guidance.flow.loss import sample_time
from unified_guidance.schedules import RectifiedFlowPath


def excess_loss(model, shift, x1, labels, **kw):
    """loss(u* + δ) − loss(u*) on the same draws: |δ|²/D in expectation (the cross term has mean 0)."""
    shifted = VelocityModel(lambda x, t, c: model(x, t, c) + shift, null_cond=2, path=model.path)
    base = flow_matching_loss(model, x1, labels, p_uncond=0.0, generator=torch.Generator().manual_seed(0), **kw)
    moved = flow_matching_loss(shifted, x1, labels, p_uncond=0.0, generator=torch.Generator().manual_seed(0), **kw)
    return float(moved - base)


@pytest.mark.parametrize("time_sampler", ["uniform", "logit_normal"])
def test_exact_velocity_minimises_the_loss_on_both_conventions(gaussian, float64, time_sampler):
    # E‖u* + δ − target‖² = E‖u* − target‖² + |δ|² exactly when u* = E[target | x_t] (Lipman et al.):
    # a wrong target (sign, ends swapped, wrong path) leaves a cross term of order |δ|.
    n = 20_000
    gen = torch.Generator().manual_seed(1)
    labels = torch.randint(0, 2, (n,), generator=gen)
    x1 = gaussian.means[labels] + gaussian.s * torch.randn(n, 2, generator=gen)
    linear = VelocityModel(gaussian, null_cond=2)
    rectified = VelocityModel(lambda x, sigma, c: -gaussian(x, 1 - sigma, c), null_cond=2, path=RectifiedFlowPath())
    shift = torch.tensor([0.5, -0.5])
    for model in (linear, rectified):
        got = excess_loss(model, shift, x1, labels, time_sampler=time_sampler)
        assert got == pytest.approx(float(shift.square().mean()), abs=0.02)  # cross term sd ≈ 0.005


def test_time_samplers():
    gen = torch.Generator().manual_seed(0)
    u = sample_time("uniform", 20_000, generator=gen)
    assert float(u.min()) >= 0 and float(u.max()) <= 1 and float(u.mean()) == pytest.approx(0.5, abs=0.01)
    t = sample_time("logit_normal", 20_000, generator=gen, loc=0.5, scale=0.8)
    logit = torch.log(t / (1 - t))
    assert float(logit.mean()) == pytest.approx(0.5, abs=4 * 0.8 / math.sqrt(20_000))
    assert float(logit.std()) == pytest.approx(0.8, abs=0.02)
    with pytest.raises(ValueError, match="time_sampler: unknown sampler 'beta'; valid samplers: uniform, logit_normal"):
        sample_time("beta", 4)


def test_condition_dropout_replaces_ten_percent_of_labels_by_the_null_token():
    seen = {}

    def net(x, t, c):
        seen["labels"] = c
        return torch.zeros_like(x)

    model = VelocityModel(net, null_cond=10)
    n = 8000
    labels = torch.randint(0, 10, (n,))
    flow_matching_loss(model, torch.randn(n, 1, 8, 8), labels, generator=torch.Generator().manual_seed(0))
    dropped = seen["labels"] == 10
    assert float(dropped.float().mean()) == pytest.approx(0.1, abs=4 * math.sqrt(0.09 / n))
    assert torch.equal(seen["labels"][~dropped], labels[~dropped])


def test_dropout_needs_a_null_condition():
    model = VelocityModel(lambda x, t, c: x)
    with pytest.raises(ValueError, match="p_uncond: condition dropout needs a model with a null condition"):
        flow_matching_loss(model, torch.randn(4, 2), torch.zeros(4, dtype=torch.long))
