"""Rectified-CFG++: Euler on the conditional field at s = 1, the hand-computed step, the row count."""

import pytest
import torch

import unified_guidance as ug
from unified_guidance.analytic import two_d_mixture
from unified_guidance.flow import rectified_cfgpp
from unified_guidance.guidance import cfg
from unified_guidance.schedules import Interval, LinearFlowPath

LABELS = torch.tensor([0, 1, 2, 1])


@pytest.fixture
def flow(float64):
    return two_d_mixture(path=LinearFlowPath(), space="velocity")


def noise(n=4):
    return torch.randn(n, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)


def test_at_scale_one_it_is_euler_on_the_conditional_field_with_b_rows_a_half_step(flow):
    x0 = noise()
    ours, stats = rectified_cfgpp(flow, 1.0, x0, LABELS, steps=5, t_span=(0.0, 0.9))
    euler, _ = ug.flow.sample(flow, 1.0, x0, LABELS, method="euler", steps=5, t_span=(0.0, 0.9))
    torch.testing.assert_close(ours, euler, rtol=1e-12, atol=1e-12)
    assert stats.forward_rows == 5 * 2 * len(LABELS) and stats.skipped_reference == 5


def test_one_step_equals_the_predictor_corrector_by_hand(flow):
    x0, s, gamma, h = noise(), 4.0, 2.0, 0.5
    out, stats = rectified_cfgpp(flow, s, x0, LABELS, steps=1, gamma=gamma, t_span=(0.0, h))
    t0 = torch.zeros(4, dtype=torch.float64)
    v_c = flow(x0, t0, LABELS)
    x_mid = x0 + h / 2 * v_c
    c, u = flow(x_mid, t0 + h / 2, LABELS), flow(x_mid, t0 + h / 2, None)
    decay = (1 - h / 2) ** gamma  # progress τ = t on the linear path
    torch.testing.assert_close(out, x0 + h * (v_c + decay * (cfg(c, u, s) - c)))
    assert stats.forward_rows == 3 * len(LABELS) and stats.nfe == 2


def test_a_schedule_switches_the_correction_and_its_rows_off(flow):
    _, stats = rectified_cfgpp(flow, Interval(5.0, lo=0.0, hi=0.45), noise(), LABELS, steps=4)
    # midpoints τ = 0.125, 0.375 inside (3B rows), 0.625, 0.875 outside (2B rows)
    assert stats.forward_rows == (3 + 3 + 2 + 2) * len(LABELS)


def test_bad_arguments_are_named(flow):
    with pytest.raises(ValueError, match="steps: expected a positive int"):
        rectified_cfgpp(flow, 3.0, noise(), LABELS, steps=0)
    with pytest.raises(ValueError, match="gamma: expected a value ≥ 0"):
        rectified_cfgpp(flow, 3.0, noise(), LABELS, steps=2, gamma=-1.0)
    eps = two_d_mixture(path=ug.schedules.LinearBetaSchedule(), space="eps")
    with pytest.raises(ValueError, match="model: expected a velocity model"):
        rectified_cfgpp(eps, 3.0, noise(), LABELS, steps=2)
