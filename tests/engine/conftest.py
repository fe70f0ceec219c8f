"""The engine tests' exact model: the class-conditional 2-D Gaussian mixture as an ε-predictor."""

import pytest
import torch

from unified_guidance.data import two_d_mixture
from unified_guidance.schedules import LinearBetaSchedule


@pytest.fixture
def mixture(float64):
    return two_d_mixture(path=LinearBetaSchedule(), space="eps")


def x_batch(n: int = 4, seed: int = 0) -> torch.Tensor:
    """``n`` standard-normal 2-D states in float64, seeded."""
    return torch.randn(n, 2, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
