"""Scale schedules: values, breakpoints, unit intervals, and the noise-level helper."""

import math

import pytest
import torch

from unified_guidance.schedules import (
    Constant,
    Cosine,
    CosineSchedule,
    Custom,
    Decay,
    Interval,
    Linear,
    LinearBetaSchedule,
    LinearFlowPath,
    Piecewise,
    Power,
    RectifiedFlowPath,
    sigma_interval_to_progress,
)
from unified_guidance.schedules.scale import Product, schedule_from_name

TAU = torch.tensor([0.0, 0.25, 0.5, 0.75, 1.0], dtype=torch.float64)


def values(schedule):
    return schedule(TAU).tolist()


def test_shapes_of_the_ramps():
    assert values(Constant(3.0)) == [3.0] * 5
    assert values(Linear(1.0, 5.0)) == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert values(Linear(7.0, 1.0, tau_start=0.25, tau_end=0.75)) == [7.0, 7.0, 4.0, 1.0, 1.0]
    cos = values(Cosine(1.0, 3.0))
    assert cos[0] == 1.0 and cos[2] == pytest.approx(2.0) and cos[4] == pytest.approx(3.0)
    assert values(Power(0.0, 16.0, exponent=2.0)) == [0.0, 1.0, 4.0, 9.0, 16.0]
    dec = values(Decay(9.0, half_life=0.25))
    assert dec == pytest.approx([9.0, 5.0, 3.0, 2.0, 1.5])


def test_interval_values_breakpoints_and_unit_intervals():
    s = Interval(7.5, lo=0.2, hi=0.8)
    assert values(s) == [1.0, 7.5, 7.5, 7.5, 1.0]
    assert s(0.2).item() == 7.5 and s(0.8).item() == 7.5
    assert s.breakpoints() == (0.2, 0.8)
    assert s.is_unit(0.1) and s.is_unit(0.9) and not s.is_unit(0.5)
    assert s.unit_from() == pytest.approx(0.8) and s.unit_from() > 0.8
    assert Interval(7.5, lo=0.0, hi=1.0).breakpoints() == ()
    assert Interval(7.5, lo=0.3, hi=1.0).unit_from() is None


def test_piecewise():
    s = Piecewise(values=(1.0, 5.0, 5.0, 1.0), boundaries=(0.2, 0.5, 0.8))
    assert values(s) == [1.0, 5.0, 5.0, 5.0, 1.0]
    assert s.breakpoints() == (0.2, 0.8)  # 0.5 joins equal values: no jump
    assert s.unit_intervals() == ((0.0, 0.2), (0.8, 1.0))
    assert s.unit_from() == 0.8
    with pytest.raises(ValueError, match="values: expected len"):
        Piecewise(values=(1.0,), boundaries=(0.5,))
    with pytest.raises(ValueError, match="boundaries"):
        Piecewise(values=(1.0, 2.0, 3.0), boundaries=(0.6, 0.4))


def test_products_and_custom():
    p = Interval(4.0, 0.2, 0.6) * Linear(1.0, 2.0, tau_start=0.5)
    assert isinstance(p, Product)
    torch.testing.assert_close(p(TAU), torch.tensor([1.0, 4.0, 4.0, 1.5, 2.0], dtype=torch.float64))
    assert p.breakpoints() == (0.2, 0.6)
    assert p.unit_intervals() == ((0.0, math.nextafter(0.2, -1.0)),)
    q = Interval(3.0, 0.5, 1.0) * Interval(2.0, 0.0, 0.5)
    assert q.unit_intervals() == ()
    c = Custom(lambda tau: 1.0 + tau**2, breakpoints_=(0.3,))
    assert values(c) == [1.0, 1.0625, 1.25, 1.5625, 2.0]
    assert c.breakpoints() == (0.3,)
    with pytest.raises(ValueError, match="fn: expected a scale of shape"):
        Custom(lambda tau: torch.ones(3))(TAU)


def test_unit_intervals_of_constants_and_ramps():
    assert Constant(1.0).unit_from() == 0.0
    assert Constant(2.0).unit_intervals() == ()
    assert Linear(5.0, 1.0, tau_end=0.6).unit_from() == 0.6
    assert Linear(1.0, 5.0, tau_start=0.4).unit_intervals() == ((0.0, 0.4),)


def test_bad_input_names_the_argument():
    with pytest.raises(ValueError, match=r"tau: expected values in \[0, 1\]"):
        Constant(2.0)(1.5)
    with pytest.raises(ValueError, match="tau: expected finite"):
        Constant(2.0)(torch.tensor([float("nan")]))
    with pytest.raises(ValueError, match="hi: expected hi ≥ lo"):
        Interval(3.0, lo=0.8, hi=0.2)
    with pytest.raises(ValueError, match="scale: expected a finite"):
        Constant(float("inf"))
    with pytest.raises(ValueError, match="valid schedules: constant, linear"):
        schedule_from_name("ramp")
    with pytest.raises(ValueError, match=r"Custom scale: expected finite"):
        Custom(lambda tau: tau / 0.0)(TAU)
    assert schedule_from_name("interval", scale=2.0, lo=0.1, hi=0.2)(0.15).item() == 2.0


@pytest.mark.parametrize("path", [LinearBetaSchedule(), CosineSchedule(), LinearFlowPath(), RectifiedFlowPath()])
def test_noise_level_interval_maps_to_progress(path):
    lo, hi = sigma_interval_to_progress(path, 0.28, 5.42)
    assert 0.0 < lo < hi < 1.0
    level = lambda tau: float(path.noise_level(path.time(torch.tensor(tau, dtype=torch.float64))))  # noqa: E731
    assert level(lo) == pytest.approx(5.42, rel=1e-8)
    assert level(hi) == pytest.approx(0.28, rel=1e-8)
    assert level((lo + hi) / 2) < 5.42 and level((lo + hi) / 2) > 0.28


def test_noise_level_closed_form_for_the_linear_flow_path():
    # σ_t/α_t = (1 − t)/t  ⇒  t = 1/(1 + σ).
    lo, hi = sigma_interval_to_progress(LinearFlowPath(), 1.0, 3.0)
    assert lo == pytest.approx(0.25, abs=1e-10) and hi == pytest.approx(0.5, abs=1e-10)
    assert sigma_interval_to_progress(LinearFlowPath(), 0.0, 1e9)[1] == 1.0
    with pytest.raises(ValueError, match="sigma_hi"):
        sigma_interval_to_progress(LinearFlowPath(), 2.0, 1.0)


@pytest.mark.parametrize("path", [LinearBetaSchedule(), CosineSchedule()])
def test_vp_coefficients_are_finite_at_the_data_end_and_preserve_variance(path):
    t = torch.tensor([0.0, 0.3, 0.9], dtype=torch.float64)
    c = path.coefficients(t)
    for v in (c.alpha_t, c.sigma_t, c.d_alpha_t, c.d_sigma_t):
        assert bool(torch.isfinite(v).all())
    torch.testing.assert_close(c.alpha_t**2 + c.sigma_t**2, torch.ones(3, dtype=torch.float64))
    assert float(c.sigma_t[0]) == 0.0 and float(c.alpha_t[0]) == pytest.approx(1.0)
    # dσ/dt is the derivative of σ: compare with a central difference away from t = 0.
    h = 1e-6
    fd = (path.coefficients(t[1:] + h).sigma_t - path.coefficients(t[1:] - h).sigma_t) / (2 * h)
    torch.testing.assert_close(c.d_sigma_t[1:], fd, rtol=1e-5, atol=1e-7)


def test_beta_schedule_peaks_at_the_mode_and_is_one_at_the_ends():
    from unified_guidance.schedules import Beta
    from unified_guidance.schedules.scale import schedule_from_name

    sched = Beta(7.0, a=3.0, b=2.0)
    assert sched.mode == pytest.approx(2.0 / 3.0)
    tau = torch.tensor([0.0, 0.25, 2.0 / 3.0, 1.0], dtype=torch.float64)
    f = tau**2 * (1 - tau)
    expected = 1 + 6.0 * f / ((2 / 3) ** 2 * (1 / 3))
    torch.testing.assert_close(sched(tau), expected)
    assert sched.unit_intervals() == ((0.0, 0.0), (1.0, 1.0)) and sched.breakpoints() == ()
    torch.testing.assert_close(Beta(4.0, 1.0, 1.0)(tau), torch.full_like(tau, 4.0))
    assert isinstance(schedule_from_name("beta", scale=3.0), Beta)
    with pytest.raises(ValueError, match="a: expected a value ≥ 1"):
        Beta(3.0, a=0.5)
