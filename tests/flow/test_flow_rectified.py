"""Rectified-CFG++: the paper's step by hand on a linear field, Euler at s = 1, the row count."""

import pytest
import torch

import unified_guidance as ug
from unified_guidance.data import two_d_mixture
from unified_guidance.flow import VelocityModel
from unified_guidance.flow.rectified import rectified_cfgpp
from unified_guidance.guidance.functional import cfg
from unified_guidance.schedules import Interval, LinearFlowPath, RectifiedFlowPath

LABELS = torch.tensor([0, 1, 2, 1])


@pytest.fixture
def flow(float64):
    return two_d_mixture(path=LinearFlowPath(), space="velocity")


def noise(n=4):
    return torch.randn(n, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)


def linear_field(path):
    """v(x | y) = −x + 2, v(x | ∅) = x/2 (label 1 is ∅): every step has a closed form."""

    def net(x, t, labels):
        null = (labels == 1).reshape(-1, 1)
        return torch.where(null, 0.5 * x, 2.0 - x)

    return VelocityModel(net, null_cond=1, path=path)


@pytest.mark.parametrize(
    ("gamma", "expected"),
    [
        # Alg. 1 of arXiv 2510.07631 at x = 1, t = 0.5 (τ = 0.5), h = 0.5, s = 3 (λ_max = 2):
        # v_c = 1, x̃ = 1.25, c̃ − ũ = 0.75 − 0.625 = 0.125, α = 2·τ^γ;
        # x ← 1 + 0.5·(1 + α·0.125). The old weight (1 − τ̃)^γ, τ̃ = 0.75, gave 1.5078125 at γ = 2.
        (2.0, 1.53125),  # α = 2·0.25
        (1.0, 1.5625),  # α = 2·0.5
        (0.0, 1.625),  # α = λ_max: constant, the authors' SD3 pipeline
    ],
)
def test_one_step_is_the_papers_algorithm_on_a_linear_field(float64, gamma, expected):
    model = linear_field(LinearFlowPath())
    x0 = torch.ones(1, 1, dtype=torch.float64)
    out, stats = rectified_cfgpp(model, 3.0, x0, torch.tensor([0]), steps=1, gamma=gamma, t_span=(0.5, 1.0))
    assert out.item() == expected
    assert stats.nfe == 2 and stats.forward_rows == 3


def test_the_weight_is_taken_in_progress_on_the_rectified_path(float64):
    # σ: 0.75 → 0.25 (τ = 0.25 at the start; the paper's t is σ, α = λ_max·(1 − σ)^γ), h = −0.5, s = 3, γ = 2:
    # v_c = 1, x̃ = 0.75, c̃ − ũ = 1.25 − 0.375 = 0.875, α = 2·0.0625; x ← 1 − 0.5·(1 + 0.109375).
    model = linear_field(RectifiedFlowPath())
    x0 = torch.ones(1, 1, dtype=torch.float64)
    out, _ = rectified_cfgpp(model, 3.0, x0, torch.tensor([0]), steps=1, gamma=2.0, t_span=(0.75, 0.25))
    assert out.item() == 0.4453125  # the old weight (1 − τ̃)^γ = 0.25 gave 0.28125


def test_a_step_from_the_noise_end_is_conditional_euler_without_the_midpoint_forward(flow):
    x0 = noise()
    out, stats = rectified_cfgpp(flow, 4.0, x0, LABELS, steps=1, gamma=1.0, t_span=(0.0, 0.5))
    v_c = flow(x0, torch.zeros(4, dtype=torch.float64), LABELS)
    torch.testing.assert_close(out, x0 + 0.5 * v_c, rtol=0, atol=0)
    assert stats.nfe == 1 and stats.forward_rows == len(LABELS)


def test_at_scale_one_it_is_euler_on_the_conditional_field_with_b_rows_a_half_step(flow):
    x0 = noise()
    ours, stats = rectified_cfgpp(flow, 1.0, x0, LABELS, steps=5, t_span=(0.0, 0.9))
    euler, _ = ug.flow.sample(flow, 1.0, x0, LABELS, method="euler", steps=5, t_span=(0.0, 0.9))
    torch.testing.assert_close(ours, euler, rtol=1e-12, atol=1e-12)
    # first step: weight 0^γ = 0, no midpoint forward; then B at x and B at x̃ (reference skipped)
    assert stats.forward_rows == (1 + 4 * 2) * len(LABELS) and stats.skipped_reference == 4


def test_one_step_equals_the_predictor_corrector_by_hand(flow):
    x0, s, gamma, t0, h = noise(), 4.0, 2.0, 0.2, 0.5
    out, stats = rectified_cfgpp(flow, s, x0, LABELS, steps=1, gamma=gamma, t_span=(t0, t0 + h))
    t = torch.full((4,), t0, dtype=torch.float64)
    v_c = flow(x0, t, LABELS)
    x_mid = x0 + h / 2 * v_c
    c, u = flow(x_mid, t + h / 2, LABELS), flow(x_mid, t + h / 2, None)
    weight = t0**gamma  # progress τ = t on the linear path, taken at the step's start
    torch.testing.assert_close(out, x0 + h * (v_c + weight * (cfg(c, u, s) - c)))
    assert stats.forward_rows == 3 * len(LABELS) and stats.nfe == 2


def test_a_schedule_switches_the_correction_and_its_rows_off(flow):
    _, stats = rectified_cfgpp(flow, Interval(5.0, lo=0.0, hi=0.45), noise(), LABELS, steps=4)
    # step 1 starts at τ = 0 (weight 0: B rows); midpoints τ = 0.375 inside (3B), 0.625, 0.875 outside (2B)
    assert stats.forward_rows == (1 + 3 + 2 + 2) * len(LABELS)


def test_bad_arguments_are_named(flow):
    with pytest.raises(ValueError, match="steps: expected an integer ≥ 1"):
        rectified_cfgpp(flow, 3.0, noise(), LABELS, steps=0)
    with pytest.raises(ValueError, match="gamma: expected a value ≥ 0"):
        rectified_cfgpp(flow, 3.0, noise(), LABELS, steps=2, gamma=-1.0)
    eps = two_d_mixture(path=ug.schedules.LinearBetaSchedule(), space="eps")
    with pytest.raises(ValueError, match="model: expected a velocity model"):
        rectified_cfgpp(eps, 3.0, noise(), LABELS, steps=2)


def test_flow_sample_chooses_rectified_cfgpp_by_method_name(flow):
    """The solver-level rule is a ``method`` of ``flow.sample``, as CFG++ is of ``diffusion.sample``."""
    direct = rectified_cfgpp(flow, 3.0, noise(), LABELS, steps=4, gamma=2.0)
    flow.reset_stats()
    routed = ug.flow.sample(flow, 3.0, noise(), LABELS, method="rectified_cfgpp", steps=4, gamma=2.0)
    assert type(routed) is type(direct) is ug.guidance.SampleOutput
    torch.testing.assert_close(routed.samples, direct.samples, rtol=0, atol=0)
    assert routed.stats == direct.stats and flow.stats.rows == routed.stats.forward_rows
    with pytest.raises(
        ValueError, match=r"method: unknown torchdiffeq solver 'rk45'; valid methods: .*'rectified_cfgpp'"
    ):
        ug.flow.sample(flow, 3.0, noise(), LABELS, method="rk45")
    with pytest.raises(TypeError, match=r"model: Rectified-CFG\+\+ takes .* got a GuidedModel"):
        ug.flow.sample(ug.guide(flow, 3.0), None, noise(), LABELS, method="rectified_cfgpp", steps=2)
