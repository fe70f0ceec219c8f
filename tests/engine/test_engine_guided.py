"""The guided model: forward counts, branch sources, the exact sharpened posterior, bad input."""

import pytest
import torch

import unified_guidance as ug
from tests.engine.conftest import x_batch
from unified_guidance.data import two_d_mixture
from unified_guidance.guidance import APG, CFG, CFGZeroStar, DynamicThreshold, Guidance, ModelReference, Rescale
from unified_guidance.guidance.functional import cfg
from unified_guidance.schedules import Interval, LinearBetaSchedule, LinearFlowPath

LABELS = torch.tensor([0, 1, 2, 0])


def test_guided_eps_is_the_score_of_the_sharpened_posterior(mixture):
    """CFG on ε at scale s equals −σ_t ∇ log [p_t(x)·p_t(y|x)^s] (exact oracle by autograd)."""
    t, s = torch.tensor(0.3), 4.0
    x = x_batch().requires_grad_(True)
    (grad,) = torch.autograd.grad(mixture.guided_log_density(x, LABELS, s, t).sum(), x)
    sigma = mixture.coefficients(t).sigma_t
    guided = ug.guide(mixture, s)(x.detach(), t, LABELS)
    torch.testing.assert_close(guided, -sigma * grad, rtol=1e-8, atol=1e-8)


def test_one_stacked_forward_two_sequential_or_none_at_scale_one(mixture):
    x, t = x_batch(), torch.tensor(0.5)
    batched = ug.guide(mixture, 3.0)
    out = batched(x, t, LABELS)
    assert mixture.stats == ug.core.ForwardStats(calls=1, rows=8)

    mixture.reset_stats()
    sequential = ug.guide(mixture, Guidance(scale=3.0, batch_branches=False))
    torch.testing.assert_close(sequential(x, t, LABELS), out)
    assert mixture.stats == ug.core.ForwardStats(calls=2, rows=8)

    mixture.reset_stats()
    unit = ug.guide(mixture, 1.0)
    assert torch.equal(unit(x, t, LABELS), mixture(x, t, LABELS))
    assert mixture.stats == ug.core.ForwardStats(calls=2, rows=8)  # the guided call ran B rows once
    assert unit.stats.skipped_reference == 1 and unit.stats.skipped_rows == 4


def test_interval_skips_the_reference_outside_and_counts_the_saving(mixture):
    guided = ug.guide(mixture, Guidance(scale=Interval(5.0, lo=0.2, hi=0.8)))
    x = x_batch()
    for tau in (0.1, 0.5, 0.9):
        guided(x, mixture.path.time(torch.tensor(tau)), LABELS)
    assert mixture.stats.calls == 3 and mixture.stats.rows == 4 + 8 + 4
    assert guided.stats.skipped_reference == 2 and guided.stats.skipped_rows == 8
    # Outside the interval the output is the conditional prediction itself.
    t_out = mixture.path.time(torch.tensor(0.9))
    assert torch.equal(guided(x, t_out, LABELS), mixture(x, t_out, LABELS))


def test_negative_condition_and_composition(mixture):
    x, t = x_batch(), torch.tensor(0.4)
    neg = torch.tensor([1, 2, 0, 2])
    c, n = mixture(x, t, LABELS), mixture(x, t, neg)
    g = ug.guide(mixture, 2.5)
    torch.testing.assert_close(g(x, t, ug.Conditions.single(LABELS, negative=neg)), cfg(c, n, 2.5))
    other = torch.tensor([2, 0, 1, 1])
    c2, u = mixture(x, t, other), mixture(x, t, None)
    mixture.reset_stats()
    out = g(x, t, ug.Conditions.compose([(LABELS, 1.0), (other, -0.5)]))
    torch.testing.assert_close(out, u + 2.5 * ((c - u) - 0.5 * (c2 - u)))
    assert mixture.stats == ug.core.ForwardStats(calls=1, rows=12)  # three branches, one forward


def test_autoguidance_takes_the_reference_from_another_model(mixture):
    weak = two_d_mixture(path=LinearBetaSchedule(), space="eps")
    weak.covs.mul_(2.0)  # a blurrier model of the same data
    x, t = x_batch(), torch.tensor(0.5)
    g = ug.guide(mixture, Guidance(scale=2.0, reference=ModelReference(weak)))
    torch.testing.assert_close(g(x, t, LABELS), cfg(mixture(x, t, LABELS), weak(x, t, LABELS), 2.0))
    assert weak.stats.calls == 2


def test_rules_run_in_their_native_space(mixture):
    x, t = x_batch(), torch.tensor(0.5)
    coeffs = mixture.coefficients(t)
    to_x0 = lambda e: ug.core.convert(e, "eps", "x0", x, coeffs)  # noqa: E731
    c, u = to_x0(mixture(x, t, LABELS)), to_x0(mixture(x, t, None))
    g = ug.guide(mixture, Guidance(rule=CFG(), scale=6.0, post=[Rescale(0.7), DynamicThreshold(0.9)]))
    want = ug.guidance.functional.dynamic_threshold(ug.guidance.functional.rescale(cfg(c, u, 6.0), c, 0.7), 0.9)
    torch.testing.assert_close(to_x0(g(x, t, LABELS)), want)
    apg_model = ug.guide(mixture, Guidance(rule=APG(momentum=-0.5), scale=6.0))
    first = apg_model(x, t, LABELS)
    second = apg_model(x, t, LABELS)
    assert not torch.allclose(first, second)  # momentum carried between calls
    apg_model.reset()
    torch.testing.assert_close(apg_model(x, t, LABELS), first)


def test_cfg_zero_star_zero_init_skips_every_forward(float64):
    flow = two_d_mixture(path=LinearFlowPath(), space="velocity")
    g = ug.guide(flow, Guidance(rule=CFGZeroStar(zero_init=0.1), scale=4.0))
    x = x_batch()
    assert torch.equal(g(x, torch.tensor(0.05), LABELS), torch.zeros_like(x))
    assert flow.stats.calls == 0
    assert CFGZeroStar(zero_init=0.1).breakpoints() == (0.1,) and CFG().breakpoints() == ()
    both = Guidance(rule=CFGZeroStar(zero_init=0.1), scale=Interval(3.0, lo=0.1, hi=0.6))
    assert both.breakpoints() == (0.1, 0.6)
    c, u = flow(x, 0.5, LABELS), flow(x, 0.5, None)
    torch.testing.assert_close(g(x, torch.tensor(0.5), LABELS), ug.guidance.functional.cfg_zero_star(c, u, 4.0))


def test_bad_input_is_named(mixture):
    x, t = x_batch(), torch.tensor(0.5)
    with pytest.raises(ValueError, match="scale: APG expects scales ≥ 0"):
        ug.guide(mixture, Guidance(rule="apg", scale=-1.0))(x, t, LABELS)
    with pytest.raises(ValueError, match="valid rules: cfg, apg, cfg_zero_star"):
        Guidance(rule="cfg_plus")
    with pytest.raises(ValueError, match="cond: expected batch size 4"):
        ug.guide(mixture, 2.0)(x, t, LABELS[:3])
    with pytest.raises(ValueError, match=r"t: expected times on the model's path, from 1 \(noise\) to 0 \(data\), got"):
        ug.guide(mixture, 2.0)(x, torch.tensor(1.5), LABELS)

    nan_model = ug.core.FunctionModel(
        lambda x, t, c: torch.where((c == 3)[:, None], torch.nan, x),
        space="eps",
        path=LinearBetaSchedule(),
        null_cond=3,
    )
    with pytest.raises(ValueError, match="reference prediction: expected finite values"):
        ug.guide(nan_model, 2.0)(x, t, LABELS)
    wrong = ug.core.FunctionModel(lambda x, t, c: x.float(), space="eps", path=LinearBetaSchedule(), null_cond=3)
    with pytest.raises(ValueError, match="reference prediction: expected the dtype of conditional prediction"):
        ug.guide(mixture, Guidance(scale=2.0, reference=ModelReference(wrong)))(x, t, LABELS)
    no_null = ug.core.FunctionModel(lambda x, t, c: x, space="eps", path=LinearBetaSchedule())
    with pytest.raises(ValueError, match="null_cond: FunctionModel was built without a null condition"):
        ug.guide(no_null, 2.0)(x, t, LABELS)
    with pytest.raises(ValueError, match="valid spaces"):
        ug.core.FunctionModel(lambda x, t, c: x, space="noise")
    with pytest.raises(ValueError, match="cond: a negative condition takes the place of ∅, but no reference is on ∅"):
        ug.guide(mixture, Guidance(scale=2.0, reference=ModelReference(mixture)))(
            x, t, ug.Conditions.single(LABELS, negative=LABELS)
        )
    with pytest.raises(ValueError, match="conds/negative: expected one batch size"):
        ug.Conditions.single(LABELS, negative=LABELS[:2])


def test_condition_dropout_is_per_sample():
    labels = torch.arange(10).repeat(100)
    dropped, mask = ug.core.drop_condition(labels, 10, 0.1, generator=torch.Generator().manual_seed(0))
    assert torch.equal(dropped[mask], torch.full((int(mask.sum()),), 10))
    assert torch.equal(dropped[~mask], labels[~mask])
    assert 60 < int(mask.sum()) < 140  # Binomial(1000, 0.1): mean 100, sd 9.5
    emb = torch.randn(6, 3, 4)
    null = torch.zeros(3, 4)
    out, mask = ug.core.drop_condition(emb, null, 1.0)
    assert bool(mask.all()) and torch.equal(out, torch.zeros_like(emb))
    with pytest.raises(ValueError, match="p: expected a probability"):
        ug.core.drop_condition(labels, 10, 1.5)


def test_no_condition_is_the_unconditional_model_in_one_forward(mixture):
    x, t = x_batch(), torch.tensor(0.5)
    out = ug.guide(mixture, 7.0)(x, t, None)
    assert torch.equal(out, mixture(x, t, None))
    assert mixture.stats == ug.core.ForwardStats(calls=2, rows=8)


def test_evaluate_exposes_the_branches(mixture):
    x, t = x_batch(), torch.tensor(0.5)
    g = ug.guide(mixture, Guidance(scale=Interval(3.0, lo=0.0, hi=0.1)))  # t = 0.5 is τ = 0.5: outside
    out = g.evaluate(x, t, LABELS)
    assert out.references == (None,) and torch.equal(out.guided, out.cond)
    torch.testing.assert_close(out.cond, mixture(x, t, LABELS))
    inside = ug.guide(mixture, 3.0).evaluate(x, t, LABELS)
    torch.testing.assert_close(inside.references[0], mixture(x, t, None))
    torch.testing.assert_close(inside.guided, cfg(inside.cond, inside.references[0], 3.0))
