"""Shared oracles for the flow tests: a Gaussian with a closed-form flow and the exact mixture."""

import pytest
import torch
from torch import Tensor, nn

from unified_guidance.data import two_d_mixture
from unified_guidance.schedules import LinearFlowPath

# Mixture integrations stop a hair before the data end, where x0-space rules would divide by σ = 0;
# the mixture's exact density at T is known.
T_END = 1.0 - 1e-4


class GaussianVelocity(nn.Module):
    """Exact velocity of the linear path to data N(μ_y, s²I) (one mean per label, label 2 = ∅ → mean 0).

    x_t ~ N(tμ, (t²s² + (1 − t)²) I), so u_t(x) = μ + (ts² − (1 − t))/(t²s² + (1 − t)²)·(x − tμ),
    and the flow map from noise x0 is x1 = μ + s·x0 for every solver to approximate.
    """

    def __init__(self, means: Tensor, s: float) -> None:
        super().__init__()
        self.register_buffer("means", means)
        self.s = s
        self.calls: list[Tensor] = []

    def forward(self, x: Tensor, t: Tensor, labels: Tensor) -> Tensor:
        self.calls.append(t.detach().clone())
        mu = self.means[labels]
        t = t[:, None]
        var = t * t * self.s**2 + (1 - t) ** 2
        return mu + (t * self.s**2 - (1 - t)) / var * (x - t * mu)


@pytest.fixture
def gaussian():
    means = torch.tensor([[2.0, -1.0], [-1.0, 3.0], [0.0, 0.0]], dtype=torch.float64)
    return GaussianVelocity(means, s=0.5)


@pytest.fixture
def mixture():
    return two_d_mixture(path=LinearFlowPath(), space="velocity")


@pytest.fixture
def t_end():
    return T_END
