"""The sweep's settings and work items: what the issue asks for, fixed seeds, keys that change with guidance."""

import pytest
import torch

from unified_guidance.autoregressive import PlausibilityMask
from unified_guidance.demo.runners import get_runner
from unified_guidance.demo.sweep import (
    CFG_SCALES,
    HIGH_SCALES,
    METHODS,
    MitigationParams,
    class_seed,
    guidance_for,
    sampler_options,
    settings,
    work_items,
)
from unified_guidance.guidance import (
    APG,
    FDG,
    TCFG,
    Adaptive,
    CFGZeroStar,
    DynamicThreshold,
    Guidance,
    MamboG,
    PerturbedReference,
    Rescale,
)  # fmt: skip
from unified_guidance.perturb.spec import IdentityAttention, SkipBlocks
from unified_guidance.schedules import Beta, Constant, Decay, Interval


def test_settings_are_plain_cfg_scales_then_mitigations_at_high_scales():
    sweep = settings(["cfg", "rescale", "interval"])
    assert CFG_SCALES == (0.0, 1.0, 1.5, 2.0, 3.0, 5.0, 8.0, 15.0)
    assert [(s.method, s.scale) for s in sweep] == [("cfg", s) for s in CFG_SCALES] + [
        ("rescale", 8.0), ("rescale", 15.0), ("interval", 8.0), ("interval", 15.0)
    ]  # fmt: skip


def test_each_method_builds_its_guidance():
    p = MitigationParams()
    assert guidance_for("cfg", 8).references[0].schedule == Constant(8.0)
    assert guidance_for("rescale", 8).post == (Rescale(phi=p.rescale_phi),)
    assert guidance_for("dynamic_threshold", 8).post == (DynamicThreshold(percentile=p.threshold_percentile),)
    assert guidance_for("interval", 8).references[0].schedule == Interval(8.0, lo=p.interval[0], hi=p.interval[1])
    assert guidance_for("decay", 8).references[0].schedule == Decay(8.0, half_life=p.decay_half_life)
    assert isinstance(guidance_for("apg", 8).references[0].rule, APG)
    assert isinstance(guidance_for("cfg_zero_star", 8).references[0].rule, CFGZeroStar)
    assert guidance_for("plausibility", 8).post == (PlausibilityMask(p.plausibility_alpha),)
    assert isinstance(guidance_for("tcfg", 8).references[0].rule, TCFG)
    assert guidance_for("mambo_g", 8).references[0].rule == MamboG(alpha=p.mambo_alpha)
    assert guidance_for("fdg", 8).references[0].rule == FDG(ratios=p.fdg_ratios)
    assert guidance_for("adaptive", 8).references[0].rule == Adaptive(gamma=p.adaptive_gamma)
    assert guidance_for("beta", 8).references[0].schedule == Beta(8.0, *p.beta_shape)
    assert guidance_for("rectified_cfgpp", 8) == Guidance(scale=8.0)  # a solver-level rule: plain CFG's guidance
    assert sampler_options("rectified_cfgpp") == (("method", "rectified_cfgpp"), ("gamma", p.rectified_gamma))
    assert guidance_for("cfgpp", 8) == Guidance(scale=8.0)
    assert sampler_options("cfgpp") == (("method", "ddim_cfgpp"),)
    assert sampler_options("apg") == ()
    assert set(METHODS) == {
        "cfg", "rescale", "dynamic_threshold", "interval", "decay", "apg", "cfg_zero_star",
        "tcfg", "mambo_g", "fdg", "adaptive", "beta", "cfgpp", "rectified_cfgpp", "plausibility",
        "pag", "slg", "cfg_pag", "gft", "cfg_matched",
    }  # fmt: skip
    assert guidance_for("gft", 3) == guidance_for("cfg_matched", 3) == Guidance(scale=3.0)  # plain CFG, folded or not
    assert guidance_for("pag", 3).references[0].source == PerturbedReference(IdentityAttention(p.pag_modules))
    assert guidance_for("slg", 3).references[0].source == PerturbedReference(SkipBlocks(p.slg_modules))
    both = guidance_for("cfg_pag", 3)  # u + s(c − u) + s_p(c − c_pert)
    assert both.references[0].source is None and both.references[0].schedule == Constant(3.0)
    assert both.references[1].source == PerturbedReference(IdentityAttention(p.pag_modules))
    assert both.references[1].schedule == Constant(1.0 + p.cfg_pag_scale)
    with pytest.raises(ValueError, match="method: unknown method 'gan'; valid methods: cfg, rescale"):
        guidance_for("gan", 3)


def test_dit_runners_sweep_the_perturbations_at_their_own_scales_with_counted_rows():
    runner = get_runner("flow_dit")
    sweep = settings(runner.methods, CFG_SCALES, HIGH_SCALES, runner.method_scales)
    assert [(x.method, x.scale) for x in sweep if x.method != "cfg"] == [
        (m, s) for m in ("pag", "slg", "cfg_pag") for s in (2.0, 3.0, 5.0)
    ]
    module = runner.make(runner.config(quick=True))
    steps = 2 * module.hparams.sample_steps  # midpoint: two evaluations a step
    for method, branches in [("cfg", 2), ("pag", 2), ("slg", 2), ("cfg_pag", 3)]:
        before = module.model.stats.rows
        module.sample(torch.tensor([3, 4]), guidance_for(method, 3.0, runner.params))
        assert module.model.stats.rows - before == branches * 2 * steps, method


def test_work_items_share_class_seeds_and_fingerprint_the_guidance():
    sweep = settings(["cfg", "interval"], scales=(1.0, 3.0), high=(8.0,))
    items = work_items("flow", sweep, num_classes=3, samples_per_class=4, seed=0)
    assert [it.index for it in items] == list(range(9))
    assert {it.seed for it in items if it.label == 2} == {class_seed(0, 2)}  # same noise in every setting
    assert len({class_seed(0, c) for c in range(10)}) == 10
    wider = MitigationParams(interval=(0.1, 0.9))
    other = work_items("flow", sweep, num_classes=3, samples_per_class=4, seed=0, params=wider)
    changed = [a.key != b.key for a, b in zip(items, other, strict=True)]
    assert changed == [False] * 6 + [True] * 3  # only the interval items
