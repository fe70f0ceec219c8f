"""NAG as a reference of the guided model: it acts inside the conditional forward (B rows), at
its scale schedule's w(τ), against the call's negative (else ∅), and composes with CFG, PAG and
the fold of a guidance-free model."""

from __future__ import annotations

import pytest
import torch

from tests.networks.test_networks_dit import randomised
from tests.perturb.test_perturb_nag import TOL, cross_dit, dit_by_hand
from unified_guidance.core.conditions import Conditions
from unified_guidance.diffusion import EpsModel
from unified_guidance.guidance import Guidance, PerturbedReference, Reference, guide
from unified_guidance.networks import TinyDiT
from unified_guidance.perturb import nag, pag
from unified_guidance.schedules import Linear

PERT = nag("blocks.*.cross", tau=2.0, alpha=0.5, context="context")


def case(seed: int = 6):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(3, 1, 8, 8, generator=g, dtype=torch.float64)
    return x, torch.tensor([0.2, 0.5, 0.9], dtype=torch.float64), torch.tensor([0, 1, 2]), torch.tensor([1, 2, 0])


def test_a_nag_reference_runs_b_rows_with_nag_inside_against_the_negative():
    net = cross_dit()
    model = EpsModel(net, null_cond=3, num_classes=3)
    x, t, labels, negative = case()
    g = guide(model, Guidance(references=[Reference(PERT, 4.0)]))
    out = g.evaluate(x, t, Conditions.single(labels, negative=negative))
    torch.testing.assert_close(out.guided, dit_by_hand(net, x, t, labels, negative, 4.0, 2.0, 0.5), **TOL)
    assert out.references == (None,) and torch.equal(out.guided, out.cond)
    assert model.stats.calls == 1 and model.stats.rows == 3  # B rows, not 2B
    assert g.stats.skipped_reference == 0 and g.stats.skipped_rows == 0
    null = torch.full_like(labels, 3)  # without a negative: against ∅
    torch.testing.assert_close(g(x, t, labels), dit_by_hand(net, x, t, labels, null, 4.0, 2.0, 0.5), **TOL)
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in net.modules())


def test_nag_follows_its_scale_schedule_over_progress_and_does_nothing_at_scale_1():
    net = cross_dit(2)
    model = EpsModel(net, null_cond=3, num_classes=3)
    x, t, labels, negative = case(7)
    schedule = Linear(1.0, 8.0)
    w = schedule.value(model.progress(t))
    g = guide(model, Guidance(references=[Reference(PERT, schedule)]))
    ours = g(x, t, Conditions.single(labels, negative=negative))
    torch.testing.assert_close(ours, dit_by_hand(net, x, t, labels, negative, w, 2.0, 0.5), **TOL)
    off = guide(model, Guidance(references=[Reference(PERT, 1.0)]))
    assert torch.equal(off(x, t, Conditions.single(labels, negative=negative)), model(x, t, labels))


def test_cfg_against_null_plus_nag_against_the_negative_prompt():
    net = cross_dit(3)
    model = EpsModel(net, null_cond=3, num_classes=3)
    x, t, labels, negative = case(8)
    g = guide(model, Guidance(scale=3.0, also=[Reference(PERT, 5.0)]))
    model.reset_stats()
    ours = g(x, t, Conditions.single(labels, negative=negative))
    c = dit_by_hand(net, x, t, labels, negative, 5.0, 2.0, 0.5)
    u = model(x, t, torch.full_like(labels, 3))  # ∅ runs without NAG
    torch.testing.assert_close(ours, u + 3.0 * (c - u), **TOL)
    assert model.stats.calls == 2 and model.stats.rows == 3 + 3 + 3  # one forward of 2B, then u's check


def test_pag_rows_are_the_perturbed_copy_of_the_nag_forward():
    net = cross_dit(4)
    model = EpsModel(net, null_cond=3, num_classes=3)
    x, t, labels, negative = case(9)
    spec = Conditions.single(labels, negative=negative)
    pag_ref = Reference(PerturbedReference(pag("blocks.0.attn")), 2.0)
    both = guide(model, Guidance(references=[Reference(PERT, 5.0), pag_ref])).evaluate(x, t, spec)
    alone = guide(model, Guidance(references=[Reference(PERT, 5.0)])).evaluate(x, t, spec)
    torch.testing.assert_close(both.cond, alone.guided, **TOL)
    pag_only = guide(model, Guidance(references=[pag_ref])).evaluate(x, t, labels)
    assert not torch.allclose(both.references[1], pag_only.references[0])  # NAG acted in the PAG rows


def test_nag_on_a_guidance_free_model_is_one_forward_with_the_folded_scale():
    torch.manual_seed(0)
    net = TinyDiT(image_size=8, num_classes=3, width=16, depth=2, heads=2, cond_mode="cross", context_tokens=3,
                  guidance_input=True)  # fmt: skip
    net = randomised(net, 5).double().eval().requires_grad_(False)
    model = EpsModel(net, null_cond=3, num_classes=3)
    x, t, labels, negative = case(10)
    g = guide(model, Guidance(scale=4.0, also=[Reference(PERT, 3.0)]))
    ours = g(x, t, Conditions.single(labels, negative=negative))
    assert model.stats.calls == 1 and model.stats.rows == 3
    beta = torch.full((3,), 0.25, dtype=torch.float64)
    hand_embed = net.embed.forward
    net.embed.forward = lambda x_, t_, y_, b_=None: hand_embed(x_, t_, y_, beta)  # the folded β = 1/s
    try:
        oracle = dit_by_hand(net, x, t, labels, negative, 3.0, 2.0, 0.5)
    finally:
        del net.embed.forward
    torch.testing.assert_close(ours, oracle, **TOL)


@pytest.mark.parametrize(
    ("ref", "match"),
    [(Reference(PERT, 2.0, rule="apg"), "rule: a NAG reference"),
     (Reference(PerturbedReference(PERT, "null"), 2.0), "condition: NAG guides the conditional forward")],
)  # fmt: skip
def test_a_nag_reference_with_a_rule_or_on_null_is_refused(ref, match):
    model = EpsModel(cross_dit(), null_cond=3, num_classes=3)
    with pytest.raises(ValueError, match=match):
        guide(model, Guidance(references=[ref]))
