"""References are one uniform tuple: no position is special, one combination step and one plan
serve the guided model and token decoding."""

from __future__ import annotations

import pytest
import torch

from tests.perturb.attention_nets import token_model
from unified_guidance.autoregressive.mixing import Mixing, guided_scores
from unified_guidance.autoregressive.progress import decode_plan
from unified_guidance.core import Conditions
from unified_guidance.guidance import (
    CFG,
    CFGZeroStar,
    Guidance,
    ModelReference,
    PerturbedReference,
    Reference,
    guide,
)
from unified_guidance.guidance.combine import combine
from unified_guidance.guidance.functional import cfg
from unified_guidance.guidance.plan import Plan
from unified_guidance.guidance.spec import as_guidance
from unified_guidance.perturb import Rows, pag, perturbed, slg
from unified_guidance.schedules import Constant, Interval


def _inputs(batch: int = 4):
    g = torch.Generator().manual_seed(3)
    return torch.randn(batch, 1, 4, 4, generator=g, dtype=torch.float64), torch.tensor(0.4), torch.arange(batch) % 3


def _pert(model, pert, x, t, y):
    with perturbed(model, [(pert, Rows.all(x.shape[0]))]):
        return model(x, t, y)


def test_the_shortcuts_build_the_same_tuple_and_mixing_both_is_refused():
    both = Guidance(scale=3.0, also=[Reference(pag("blocks.1.attn"), 2.0)])
    assert both == Guidance(references=(Reference(None, 3.0, CFG()), Reference(pag("blocks.1.attn"), 2.0)))
    assert Guidance() == Guidance(references=(Reference(None, 1.0),))
    assert both.references[0].schedule == Constant(3.0)
    with pytest.raises(TypeError, match="references: given together with scale"):
        Guidance(scale=2.0, references=(Reference(None, 2.0),))
    with pytest.raises(TypeError, match="references: given together with also"):
        Guidance(references=(Reference(None, 2.0),), also=[Reference(None, 2.0)])
    with pytest.raises(ValueError, match="references: expected at least one Reference, got none"):
        Guidance(references=())
    with pytest.raises(TypeError, match="references: expected Reference objects, got float"):
        Guidance(references=(2.0,))  # type: ignore[arg-type]
    assert as_guidance(2.5) == Guidance(scale=2.5)
    with pytest.raises(TypeError, match="guidance: expected a number, a Schedule or a Guidance, got bool"):
        as_guidance(True)


def test_the_order_of_the_references_does_not_change_the_prediction_or_the_rows():
    x, t, y = _inputs()
    refs = (Reference(None, 3.0), Reference(pag("blocks.1.attn"), 2.5), Reference(slg("blocks.2"), 1.5))
    outs, rows = [], []
    for order in (refs, refs[::-1], (refs[1], refs[0], refs[2])):
        model = token_model()
        outs.append(guide(model, Guidance(references=order))(x, t, y))
        rows.append(model.stats.rows)
    model = token_model()
    c, u = model(x, t, y), model(x, t, None)
    c_pag, c_slg = _pert(model, pag("blocks.1.attn"), x, t, y), _pert(model, slg("blocks.2"), x, t, y)
    expected = c + 2.0 * (c - u) + 1.5 * (c - c_pag) + 0.5 * (c - c_slg)
    for out in outs:
        torch.testing.assert_close(out, expected, rtol=0, atol=1e-12)
    assert rows == [4 * x.shape[0]] * 3


def test_any_single_running_reference_is_its_rule_exactly_wherever_it_sits():
    x, t, y = _inputs()
    model = token_model()
    g = guide(model, Guidance(references=(Reference(pag("blocks.1.attn"), 1.0), Reference(None, 4.0))))
    out = g.evaluate(x, t, y)
    assert out.references[0] is None and g.stats.skipped_reference == 1
    assert torch.equal(out.guided, cfg(out.cond, out.references[1], torch.tensor(4.0, dtype=torch.float64)))


def test_a_rule_that_outputs_zero_contributes_zero_not_c():
    """CFG-Zero*'s zero-init: g_j = 0 for that reference; alone, ĝ = 0 and nothing runs."""
    x, _, y = _inputs()
    model = token_model()
    early = model.path.time(torch.tensor(0.1, dtype=torch.float64))  # τ = 0.1 < zero_init
    alone = guide(model, Guidance(rule=CFGZeroStar(zero_init=0.5, space=None), scale=3.0))
    assert torch.equal(alone(x, early, y), torch.zeros_like(x)) and model.stats.rows == 0
    both = guide(model, Guidance(references=(
        Reference(None, 3.0, CFGZeroStar(zero_init=0.5, space=None)), Reference(pag("blocks.1.attn"), 2.0),
    )))  # fmt: skip
    out = both.evaluate(x, early, y)
    assert out.references[0] is None and model.stats.rows == 2 * x.shape[0]
    c, c_pag = model(x, early, y), _pert(model, pag("blocks.1.attn"), x, early, y)
    torch.testing.assert_close(out.guided, (0 - c) + c + (c - c_pag), rtol=0, atol=1e-12)


def test_a_composition_is_formed_against_null_wherever_the_null_reference_sits():
    x, t, _ = _inputs()
    a, b = torch.tensor([0, 1, 2, 0]), torch.tensor([1, 2, 0, 2])
    spec = Conditions.compose([(a, 1.0), (b, 0.5)])
    pert = PerturbedReference(pag("blocks.1.attn"), "null")
    model = token_model()
    u = model(x, t, None)
    c = u + 1.0 * (model(x, t, a) - u) + 0.5 * (model(x, t, b) - u)
    u_pag = _pert(model, pag("blocks.1.attn"), x, t, None)
    for refs in [(Reference(None, 3.0), Reference(pert, 2.0)), (Reference(pert, 2.0), Reference(None, 3.0))]:
        model.reset_stats()
        out = guide(model, Guidance(references=refs))(x, t, spec)
        torch.testing.assert_close(out, u + 3.0 * (c - u) + (c - u_pag), rtol=0, atol=1e-12)
        assert model.stats.rows == 4 * x.shape[0]  # a, b, ∅ and ∅ under PAG in one forward


def test_the_guided_model_and_token_decoding_share_one_plan():
    g = Guidance(references=(Reference(None, Interval(3.0, lo=0.0, hi=0.5)), Reference(slg("layers.1"), 2.0)))
    plan = decode_plan(g, 5)
    direct = Plan.build(g, torch.linspace(0, 1, 5, dtype=torch.float64))
    assert [p.unit for p in plan] == [p.unit for p in direct] == [(False, False)] * 3 + [(True, False)] * 2
    assert (plan.unused_from(0), plan.unused_from(1)) == (3, 5)
    torch.testing.assert_close(plan.scales, direct.scales, rtol=0, atol=0)


def test_token_scores_are_the_engines_combination():
    gen = torch.Generator().manual_seed(1)
    c, u, p = (torch.randn(3, 7, generator=gen, dtype=torch.float64) for _ in range(3))
    g = Guidance(references=(Reference(None, 2.5), Reference(slg("layers.1"), 1.5)), post=())
    scales, tau = [torch.tensor(2.5, dtype=torch.float64), torch.tensor(1.5, dtype=torch.float64)], torch.tensor(0.3)
    scores, _ = guided_scores(Mixing(g), c, [u, p], scales, tau, [None, None])
    lp = [torch.log_softmax(v, -1) for v in (c, u, p)]
    direct = combine(g.references, g.post, lp[0], lp[1:], scales, tau, [None, None], zero=[False, False],
                     space="logprobs", convert=lambda v, a, b: v, trace=lambda *_: None)  # fmt: skip
    torch.testing.assert_close(scores, direct.guided, rtol=0, atol=0)
    expected = lp[0] + 1.5 * (lp[0] - lp[1]) + 0.5 * (lp[0] - lp[2])
    torch.testing.assert_close(scores, expected, rtol=0, atol=1e-12)


def test_a_negative_condition_needs_a_reference_on_null():
    x, t, y = _inputs()
    model = token_model()
    weak = guide(model, Guidance(references=(Reference(ModelReference(token_model(1)), 2.0),)))
    with pytest.raises(ValueError, match="cond: a negative condition takes the place of ∅, but no reference is on ∅"):
        weak(x, t, Conditions.single(y, negative=(y + 1) % 3))
    both = guide(model, Guidance(references=(Reference(None, 2.0), Reference(ModelReference(token_model(1)), 1.5))))
    out = both(x, t, Conditions.single(y, negative=(y + 1) % 3))  # the negative goes to the reference on ∅
    c, neg, r = model(x, t, y), model(x, t, (y + 1) % 3), token_model(1)(x, t, y)
    torch.testing.assert_close(out, c + (c - neg) + 0.5 * (c - r), rtol=0, atol=1e-12)
