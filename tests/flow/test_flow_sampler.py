"""Guided sampling through torchdiffeq: closed-form flows, honest counts, jump points, rules, bad input."""

import pytest
import torch
from torchdiffeq import odeint

from unified_guidance import Conditions, Guidance, guide
from unified_guidance.data import two_d_mixture
from unified_guidance.flow import SOLVERS, IntegrationError, VelocityModel, sample, trajectory
from unified_guidance.flow.solvers import ADAPTIVE
from unified_guidance.guidance import CFGZeroStar
from unified_guidance.schedules import Interval

LABELS = torch.tensor([0, 1, 0, 1])


def exact_end(gaussian, x0, labels):
    return gaussian.means[labels] + gaussian.s * x0


@pytest.mark.parametrize(
    ("method", "kwargs", "tol"),
    [
        ("euler", {"steps": 200}, 2e-2),
        ("midpoint", {"steps": 50}, 2e-3),
        ("rk4", {"steps": 20}, 1e-5),
        ("dopri5", {"rtol": 1e-8, "atol": 1e-8}, 1e-6),
        ("bosh3", {"rtol": 1e-7, "atol": 1e-7}, 1e-5),
        ("dopri8", {"rtol": 1e-8, "atol": 1e-8}, 1e-6),
    ],
)
def test_every_solver_reaches_the_closed_form_flow_map(gaussian, float64, method, kwargs, tol):
    x0 = torch.randn(4, 2)
    x, stats = sample(VelocityModel(gaussian, null_cond=2), 1.0, x0, LABELS, method=method, **kwargs)
    torch.testing.assert_close(x, exact_end(gaussian, x0, LABELS), atol=tol, rtol=0)
    assert stats.nfe == stats.forward_calls  # s = 1: one forward per evaluation, reference skipped
    assert stats.forward_rows == 4 * stats.nfe and stats.skipped_reference == stats.nfe


def test_fixed_grid_counts(gaussian, float64):
    model = VelocityModel(gaussian, null_cond=2)
    for method, per_step in (("euler", 1), ("midpoint", 2), ("rk4", 4)):
        _, stats = sample(model, 3.0, torch.randn(4, 2), LABELS, method=method, steps=10)
        assert (stats.nfe, stats.steps, stats.accepted_steps) == (10 * per_step, 10, None)
        assert stats.forward_calls == stats.nfe and stats.forward_rows == 2 * 4 * stats.nfe  # cond + ∅ in one pass
    # steps= gives an exact uniform grid: the network sees exactly k/10 (no overshoot, no interpolation).
    gaussian.calls.clear()
    sample(model, 1.0, torch.randn(4, 2), LABELS, method="euler", steps=10)
    seen = torch.stack([c[0] for c in gaussian.calls])
    torch.testing.assert_close(seen, torch.arange(10, dtype=torch.float64) / 10)


def test_adaptive_counts_match_dopri5_cost_identity(mixture, t_end, float64):
    # dopri5: 1 evaluation at t0 + 1 for the initial step + 6 per attempted step (FSAL) + 1 after each jump.
    x0 = torch.randn(64, 2, generator=torch.Generator().manual_seed(0))
    labels = torch.arange(64) % 3
    for scale in (3.0, Interval(3.0, lo=0.3, hi=0.7)):
        _, st = sample(mixture, scale, x0, labels, t_span=(0.0, t_end), rtol=1e-6, atol=1e-6)
        assert st.accepted_steps > 0 and st.rejected_steps >= 0
        assert st.steps == st.accepted_steps + st.rejected_steps
        assert st.nfe == 2 + 6 * st.steps + len(st.jump_t)


def test_no_evaluation_outside_the_time_span(gaussian, float64):
    # torchdiffeq's last adaptive step would overshoot t = 1; the end is a step_t point here.
    gaussian.calls.clear()
    sample(VelocityModel(gaussian, null_cond=2), 1.0, torch.randn(4, 2), LABELS, rtol=1e-3, atol=1e-3)
    seen = torch.cat(gaussian.calls)
    assert float(seen.min()) >= 0.0 and float(seen.max()) <= 1.0


def test_interval_skips_reference_outside_and_jump_points_save_evaluations(mixture, t_end, float64):
    # s = 2 on (0.3, 0.7) at rtol = atol = 1e-6; docs/flow.md tabulates other scales and tolerances,
    # where the interval with jump points costs from a few fewer to ~15 % more evaluations.
    n = 64
    x0 = torch.randn(n, 2, generator=torch.Generator().manual_seed(0))
    labels = torch.arange(n) % 3
    kw = {"t_span": (0.0, t_end), "rtol": 1e-6, "atol": 1e-6}
    _, const = sample(mixture, 2.0, x0, labels, **kw)
    _, jump = sample(mixture, Interval(2.0, lo=0.3, hi=0.7), x0, labels, **kw)
    _, nojump = sample(mixture, Interval(2.0, lo=0.3, hi=0.7), x0, labels, jump_points=False, **kw)
    assert jump.jump_t == pytest.approx((0.3, 0.7)) and nojump.jump_t == ()
    assert jump.nfe <= const.nfe  # the interval costs no more evaluations than constant guidance…
    assert nojump.nfe >= 3 * jump.nfe  # …but several times more without jump points
    # Outside the interval the reference forward is skipped: rows = B per evaluation + B per guided one.
    assert jump.forward_rows == n * (jump.nfe + (jump.nfe - jump.skipped_reference))
    assert 0 < jump.skipped_reference < jump.nfe and jump.forward_rows < const.forward_rows


def test_the_same_ode_on_the_rectified_path_costs_what_it_costs_on_the_linear_one(float64):
    # τ = 1 − σ rounds several adjacent σ onto one τ: a jump at σ = 1 − hi used to have its first
    # evaluation after it back on τ = hi, inside the closed interval (166 evaluations instead of 124).
    from unified_guidance.schedules import LinearFlowPath, RectifiedFlowPath

    x0 = torch.randn(4, 2, generator=torch.Generator().manual_seed(0))
    g = Interval(4.0, lo=0.2, hi=0.8)
    runs = {}
    for path, span in ((LinearFlowPath(), (0.0, 1 - 1e-4)), (RectifiedFlowPath(), (1.0, 1e-4))):
        model = two_d_mixture(path=path, space="velocity")
        runs[type(path).__name__] = sample(model, g, x0, LABELS, t_span=span, rtol=1e-7, atol=1e-7)
        for j in runs[type(path).__name__].stats.jump_t:  # torchdiffeq's neighbours of j see the two sides
            j = torch.tensor(j)
            near = torch.stack([torch.nextafter(j, torch.tensor(-1.0)), torch.nextafter(j, torch.tensor(2.0))])
            scales = g.value(path.progress(near))
            assert scales[0] != scales[1]
    (x_lin, lin), (x_rect, rect) = runs["LinearFlowPath"], runs["RectifiedFlowPath"]
    assert rect.nfe == lin.nfe and rect.skipped_reference == lin.skipped_reference
    torch.testing.assert_close(x_rect, x_lin, atol=1e-6, rtol=0)


def test_guided_flows_form_equals_cfg_and_a_plain_odeint_closure(gaussian, float64):
    # Zheng et al.: ũ = (1 − w)u(x|∅) + w·u(x|y) — integrated by hand with torchdiffeq.
    w, x0 = 2.5, torch.randn(4, 2)
    null = torch.full((4,), 2)

    def closure(t, x):
        tb = t.expand(4)
        return (1 - w) * gaussian(x, tb, null) + w * gaussian(x, tb, LABELS)

    t = torch.tensor([0.0, 1.0])
    ref = odeint(closure, x0, t, method="rk4", options={"step_size": 0.05})[-1]
    x, _ = sample(VelocityModel(gaussian, null_cond=2), w, x0, LABELS, method="rk4", steps=20)
    torch.testing.assert_close(x, ref, atol=1e-12, rtol=0)


@pytest.mark.parametrize("method", ["euler", "midpoint", "rk4"])
def test_fixed_grid_methods_step_on_the_given_times_as_odeint_does(gaussian, float64, method):
    # torchdiffeq's convention: odeint(f, y0, t, method="euler") with no step_size steps on t itself.
    guided, x0 = guide(VelocityModel(gaussian, null_cond=2), 3.0), torch.randn(4, 2)
    grid = torch.tensor([0.0, 0.1, 0.15, 0.4, 0.7, 0.9, 1.0])
    ref = odeint(lambda t, x: guided(x, t.expand(4), LABELS), x0, grid, method=method)
    xs, stats = trajectory(guided, None, x0, LABELS, times=grid, method=method)
    assert torch.equal(xs, ref)
    assert stats.steps == len(grid) - 1
    with pytest.raises(ValueError, match="steps: fixed-grid method 'euler' takes at most one of"):
        trajectory(guided, None, x0, LABELS, times=grid, method="euler", steps=4, step_size=0.1)


def test_cfg_zero_star_zero_init_holds_the_state_and_skips_forwards(gaussian, float64):
    model = VelocityModel(gaussian, null_cond=2)
    g = Guidance(rule=CFGZeroStar(zero_init=0.2), scale=3.0)
    x0 = torch.randn(4, 2)
    xs, stats = trajectory(model, g, x0, LABELS, times=[0.0, 0.2, 1.0], method="euler", steps=10)
    torch.testing.assert_close(xs[1], x0, atol=0, rtol=0)  # zero velocity on the first 20 % of progress
    assert stats.nfe == 10 and stats.forward_calls == 8  # the two zero-init evaluations run no network
    assert not torch.allclose(xs[2], x0)
    # Under dopri5 the zero-init's end is a jump point.
    _, st = sample(model, g, x0, LABELS, rtol=1e-6, atol=1e-6)
    assert st.jump_t == pytest.approx((0.2,))


def test_negative_condition_and_composition_reach_the_closed_form(gaussian, float64):
    # Velocity is affine in the mean here, so u(x|neg) + s(u(x|y) − u(x|neg)) is the flow to the mean
    # μ_neg + s(μ_y − μ_neg) (with the same s² covariance): an exact oracle for the Conditions path.
    model = VelocityModel(gaussian, null_cond=2)
    x0, neg = torch.randn(4, 2), torch.tensor([1, 0, 1, 0])
    x, _ = sample(model, 2.0, x0, Conditions.single(LABELS, negative=neg), method="dopri5", rtol=1e-9, atol=1e-9)
    mean = gaussian.means[neg] + 2.0 * (gaussian.means[LABELS] - gaussian.means[neg])
    torch.testing.assert_close(x, mean + gaussian.s * x0, atol=1e-6, rtol=0)


def test_gradients_flow_and_adjoint_agrees_with_backprop(float64):
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 16), torch.nn.Tanh(), torch.nn.Linear(16, 2))
    emb = torch.nn.Embedding(3, 1)
    model = VelocityModel(lambda x, t, c: net(torch.cat([x, t[:, None] + emb(c)], 1)), null_cond=2)
    model.emb, model.mlp = emb, net  # parameters visible to odeint_adjoint
    x0 = torch.randn(4, 2, requires_grad=True)
    grads = []
    for adjoint in (False, True):
        x, _ = sample(model, 3.0, x0, LABELS, rtol=1e-9, atol=1e-9, adjoint=adjoint)
        params = [x0, *net.parameters(), *emb.parameters()]
        grads.append(torch.autograd.grad(x.square().sum(), params))
    assert grads[0][0].abs().sum() > 0  # no hidden no_grad
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)


def test_float32_state_keeps_float32(gaussian):
    model = VelocityModel(gaussian.float(), null_cond=2)
    x, _ = sample(model, 2.0, torch.randn(4, 2), LABELS, method="dopri5", rtol=1e-4, atol=1e-4)
    assert x.dtype == torch.float32 and all(c.dtype == torch.float32 for c in gaussian.calls)


# -- bad input ------------------------------------------------------------------------------------


def test_unknown_method_lists_torchdiffeq_solvers(gaussian):
    with pytest.raises(ValueError, match=r"method: unknown torchdiffeq solver 'rk45'; valid methods: dopri8, dopri5"):
        sample(VelocityModel(gaussian, null_cond=2), 1.0, torch.randn(4, 2), LABELS, method="rk45")
    assert "euler" in SOLVERS and "dopri5" in ADAPTIVE


@pytest.mark.parametrize("times", [(0.0, 1.2), (-0.5, 1.0), (0.0, float("nan"))])
def test_times_outside_unit_interval_raise(gaussian, times):
    with pytest.raises(ValueError, match=r"times: expected values in \[0, 1\]|times: expected finite"):
        sample(VelocityModel(gaussian, null_cond=2), 1.0, torch.randn(4, 2), LABELS, t_span=times)


def test_step_arguments_must_match_the_solver_kind(gaussian):
    model = VelocityModel(gaussian, null_cond=2)
    with pytest.raises(ValueError, match="steps: method 'dopri5' is adaptive"):
        sample(model, 1.0, torch.randn(4, 2), LABELS, method="dopri5", steps=10)
    with pytest.raises(ValueError, match="steps: fixed-grid method 'euler' needs exactly one of"):
        sample(model, 1.0, torch.randn(4, 2), LABELS, method="euler")  # one step over the span: refused
    with pytest.raises(ValueError, match="times: expected strictly increasing or decreasing"):
        trajectory(model, 1.0, torch.randn(4, 2), LABELS, times=[0.0, 0.5, 0.2], method="euler", steps=4)


def test_nan_during_integration_stops_and_reports_the_time(float64):
    def net(x, t, c):
        v = -x
        return torch.where(t[:, None] > 0.55, v * float("nan"), v)

    model = VelocityModel(net, null_cond=0)
    labels = torch.zeros(3, dtype=torch.long)
    with pytest.raises(IntegrationError, match=r"at t=0\.6: conditional prediction: expected finite") as err:
        sample(model, 2.0, torch.randn(3, 2), labels, method="euler", steps=10)
    assert err.value.t == pytest.approx(0.6)
    with pytest.raises(IntegrationError, match=r"at t=0\.[5-9]") as err:
        sample(model, 2.0, torch.randn(3, 2), labels, method="dopri5")
    assert 0.55 < err.value.t <= 1.0 and f"t={err.value.t:.6g}" in str(err.value)


def test_network_with_wrong_output_shape_raises_with_time(float64):
    model = VelocityModel(lambda x, t, c: x[:, :1], null_cond=0)
    with pytest.raises(IntegrationError, match=r"velocity field at t=0: net: expected an output of shape"):
        sample(model, 2.0, torch.randn(3, 2), torch.zeros(3, dtype=torch.long), method="euler", steps=4)


def test_other_engine_rules_through_velocity_conversions(gaussian, float64):
    from unified_guidance.guidance import APG, ModelReference, Rescale

    model = VelocityModel(gaussian, null_cond=2)
    x0 = torch.randn(4, 2)
    # x0-space rules need ε = (x − α·x0)/σ to come back to velocity: 0/0 at the data end t = 1,
    # which rk4 evaluates, so these integrations stop just before it.
    kw = {"method": "rk4", "steps": 10, "t_span": (0.0, 0.999)}
    cfg, _ = sample(model, 3.0, x0, LABELS, **kw)
    # APG with η = 1, no clipping, no momentum is CFG; rescale with φ = 0 is CFG (both converted to x0 and back).
    apg, _ = sample(model, Guidance(rule=APG(eta=1.0), scale=3.0), x0, LABELS, **kw)
    rescaled, _ = sample(model, Guidance(scale=3.0, post=(Rescale(phi=0.0),)), x0, LABELS, **kw)
    torch.testing.assert_close(apg, cfg, atol=1e-9, rtol=0)
    torch.testing.assert_close(rescaled, cfg, atol=1e-9, rtol=0)
    # Autoguidance: a "weaker" model with other means as the reference, same condition.
    weak = type(gaussian)(gaussian.means * 0.5, gaussian.s)
    g = Guidance(scale=2.0, reference=ModelReference(VelocityModel(weak, null_cond=2)))
    x, stats = sample(model, g, x0, LABELS, method="dopri5", rtol=1e-9, atol=1e-9)
    mean = 0.5 * gaussian.means[LABELS] + 2.0 * 0.5 * gaussian.means[LABELS]
    torch.testing.assert_close(x, mean + gaussian.s * x0, atol=1e-6, rtol=0)
    assert stats.forward_rows == 2 * 4 * stats.nfe  # both models' rows are counted


def test_jump_points_in_the_rectified_convention(gaussian, float64):
    from unified_guidance.schedules import RectifiedFlowPath

    rect = VelocityModel(lambda x, sigma, c: -gaussian(x, 1 - sigma, c), null_cond=2, path=RectifiedFlowPath())
    g = Guidance(rule=CFGZeroStar(zero_init=0.2), scale=Interval(3.0, lo=0.4, hi=0.9))
    _, stats = sample(rect, g, torch.randn(4, 2), LABELS, rtol=1e-6, atol=1e-6)
    assert stats.jump_t == pytest.approx((0.1, 0.6, 0.8))  # σ = 1 − τ
