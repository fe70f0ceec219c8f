"""References as a list in the engine: CFG + PAG/SEG/SLG as one stacked forward, equal to the
sequential passes and to the papers' formula; one ∅ reference stays CFG exactly; skips counted."""

from __future__ import annotations

import pytest
import torch

from tests.perturb.attention_nets import token_model
from unified_guidance.guidance import Guidance, ModelReference, PerturbedReference, Reference, guide
from unified_guidance.guidance.functional import cfg
from unified_guidance.perturb import Rows, pag, perturbed, seg, slg
from unified_guidance.schedules import Interval

PERTURBATIONS = [pag("blocks.1.attn"), seg("blocks.*.attn", sigma=1.5), seg("blocks.2.attn"), slg("blocks.1")]


def _inputs(batch: int = 4):
    g = torch.Generator().manual_seed(2)
    return torch.randn(batch, 1, 4, 4, generator=g, dtype=torch.float64), torch.tensor(0.4), torch.arange(batch) % 3


@pytest.mark.parametrize("pert", PERTURBATIONS, ids=lambda p: p.kind)
def test_cfg_plus_perturbed_reference_is_the_formula_in_one_forward(pert):
    model, (x, t, y) = token_model(), _inputs()
    s, w = 3.0, 2.5
    g = guide(model, Guidance(scale=s, also=[Reference(pert, scale=w)]))
    out = g(x, t, y)
    assert (model.stats.calls, model.stats.rows) == (1, 3 * x.shape[0])
    c, u = model(x, t, y), model(x, t, None)
    with perturbed(model, [(pert, Rows.all(x.shape[0]))]):
        c_pert = model(x, t, y)
    torch.testing.assert_close(out, u + s * (c - u) + (w - 1) * (c - c_pert), rtol=0, atol=1e-12)


@pytest.mark.parametrize("pert", PERTURBATIONS, ids=lambda p: p.kind)
def test_stacked_rows_equal_sequential_passes(pert):
    x, t, y = _inputs()
    outs, calls = [], []
    for stacked in (True, False):
        model = token_model()
        refs = [Reference(pert, scale=2.0), Reference(PerturbedReference(pag("blocks.0.attn"), "null"), scale=1.5)]
        g = guide(model, Guidance(scale=4.0, also=refs, batch_branches=stacked))
        outs.append(g.evaluate(x, t, y))
        calls.append(model.stats.calls)
    assert calls == [1, 4]
    for a, b in zip(
        (outs[0].guided, outs[0].cond, *outs[0].references),
        (outs[1].guided, outs[1].cond, *outs[1].references),
        strict=True,
    ):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-13)


def test_one_null_reference_is_cfg_exactly_and_scale_one_references_are_skipped():
    model, (x, t, y) = token_model(), _inputs()
    plain = guide(model, Guidance(scale=5.0))(x, t, y)
    model.reset_stats()
    g = guide(model, Guidance(scale=5.0, also=[Reference(pag("blocks.1.attn"), scale=1.0)]))
    out = g(x, t, y)
    assert torch.equal(out, plain)
    assert model.stats.rows == 2 * x.shape[0] and g.stats.skipped_reference == 1
    assert g.stats.skipped_rows == x.shape[0]


def test_perturbed_reference_alone_is_its_rule_exactly_and_counts_two_rows_per_sample():
    model, (x, t, y) = token_model(), _inputs()
    g = guide(model, Guidance(scale=1.0, also=[Reference(slg("blocks.1"), scale=3.0)]))
    out = g(x, t, y)
    assert model.stats.rows == 2 * x.shape[0]
    c = model(x, t, y)
    with perturbed(model, [(slg("blocks.1"), Rows.all(x.shape[0]))]):
        c_skip = model(x, t, y)
    assert torch.equal(out, cfg(c, c_skip, torch.tensor(3.0)))


def test_each_reference_keeps_its_own_schedule():
    model, (x, _, y) = token_model(), _inputs()
    pert = pag("blocks.1.attn")
    g = guide(model, Guidance(scale=2.0, also=[Reference(pert, scale=Interval(3.0, lo=0.5, hi=1.0))]))
    early = model.path.time(torch.tensor(0.2, dtype=torch.float64))  # τ = 0.2: PAG off
    late = model.path.time(torch.tensor(0.7, dtype=torch.float64))
    assert g.evaluate(x, early, y).references[1:] == (None,)
    assert model.stats.rows == 2 * x.shape[0]
    assert g.evaluate(x, late, y).references[1] is not None
    assert model.stats.rows == 5 * x.shape[0]


def test_autoguidance_and_pag_together():
    model, weak, (x, t, y) = token_model(0), token_model(1), _inputs()
    g = guide(model, Guidance(scale=2.0, reference=ModelReference(weak), also=[Reference(pag("blocks.1.attn"), 2.0)]))
    out = g(x, t, y)
    assert model.stats.rows == 2 * x.shape[0] and weak.stats.rows == x.shape[0]
    c, r = model(x, t, y), weak(x, t, y)
    with perturbed(model, [(pag("blocks.1.attn"), Rows.all(x.shape[0]))]):
        c_pert = model(x, t, y)
    torch.testing.assert_close(out, r + 2.0 * (c - r) + (c - c_pert), rtol=0, atol=1e-12)


def test_bad_references_are_refused_clearly():
    model = token_model()
    with pytest.raises(ValueError, match="modules: SkipBlocks selects no module"):
        guide(model, Guidance(scale=2.0, also=[Reference(slg("layers.3"), 2.0)]))
    with pytest.raises(TypeError, match="also: expected a sequence of references, got one Reference"):
        Guidance(also=Reference(pag("attn"), 2.0))
    with pytest.raises(TypeError, match="source: expected None"):
        Reference("pag", 2.0)
    with pytest.raises(ValueError, match="condition: expected 'same' or 'null'"):
        PerturbedReference(pag("attn"), "both")
