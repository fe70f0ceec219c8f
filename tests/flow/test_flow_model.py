"""The velocity adapter: time convention, null condition, broadcasting, the other path, bad input."""

import pytest
import torch
from torch import nn

from unified_guidance.flow import VelocityModel, sample
from unified_guidance.flow.model import Reparametrized
from unified_guidance.schedules import LinearFlowPath, RectifiedFlowPath


class Recorder(nn.Module):
    """Returns x·(1 + t) and records what the network saw."""

    def forward(self, x, t, cond):
        self.seen = (t, cond)
        return x * (1 + t.reshape(-1, *([1] * (x.ndim - 1))))


def test_scalar_time_is_broadcast_to_the_batch_in_x_dtype(float64):
    net = Recorder()
    model = VelocityModel(net, null_cond=10)
    x = torch.randn(4, 1, 8, 8)
    out = model(x, 0.25, torch.arange(4))
    t, _ = net.seen
    assert t.shape == (4,) and t.dtype == x.dtype and bool((t == 0.25).all())
    torch.testing.assert_close(out, 1.25 * x)
    assert model.space == "velocity" and isinstance(model.path, LinearFlowPath)


def test_null_condition_as_label_token_and_as_tensor():
    net = Recorder()
    VelocityModel(net, null_cond=10)(torch.randn(3, 2), 0.5)
    assert net.seen[1].tolist() == [10, 10, 10]
    empty = torch.zeros(5, 7)  # one sample's "empty prompt" embedding
    VelocityModel(net, null_cond=empty)(torch.randn(3, 2), 0.5)
    assert net.seen[1].shape == (3, 5, 7) and not net.seen[1].any()


@pytest.mark.parametrize("t", [-0.1, 1.5, float("nan")])
def test_time_outside_unit_interval_raises(t):
    model = VelocityModel(Recorder(), null_cond=10)
    with pytest.raises(ValueError, match="t: expected"):
        model(torch.randn(2, 3), torch.tensor([0.5, t]), torch.zeros(2, dtype=torch.long))


def test_wrong_output_shape_raises_naming_the_network():
    model = VelocityModel(lambda x, t, c: x.flatten(1), null_cond=0)
    with pytest.raises(ValueError, match=r"net: expected an output of shape \(2, 1, 4\).*got \(2, 4\)"):
        model(torch.randn(2, 1, 4), 0.5, torch.zeros(2, dtype=torch.long))


def test_rectified_convention_reexpressed_on_linear_path_is_negated_velocity(gaussian, float64):
    # The same Gaussian flow written with noise at σ = 1: u_rect(x, σ) = −u_lin(x, 1 − σ).
    rect = VelocityModel(lambda x, sigma, c: -gaussian(x, 1 - sigma, c), null_cond=2, path=RectifiedFlowPath())
    lin = VelocityModel(gaussian, null_cond=2)
    re = Reparametrized(rect, LinearFlowPath())
    x, labels = torch.randn(6, 2), torch.tensor([0, 1, 2, 0, 1, 2])
    for t in (0.0, 0.3, 0.9):
        torch.testing.assert_close(re(x, t, labels), lin(x, t, labels))
    # Sampling the rectified model integrates σ from 1 to 0 and reaches the same data.
    x0 = torch.randn(6, 2)
    x_rect, _ = sample(rect, 3.0, x0, labels, method="rk4", steps=20)
    x_lin, _ = sample(lin, 3.0, x0, labels, method="rk4", steps=20)
    torch.testing.assert_close(x_rect, x_lin, atol=1e-10, rtol=0)


def test_reparametrized_rejects_a_path_with_other_marginals(gaussian, float64):
    from unified_guidance.schedules import CosineSchedule

    re = Reparametrized(VelocityModel(gaussian, null_cond=2), CosineSchedule())
    with pytest.raises(ValueError, match="path: expected a path with the same"):
        re(torch.randn(2, 2), 0.5, torch.tensor([0, 1]))
