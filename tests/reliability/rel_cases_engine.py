"""Bad-input cases for the engine, the rules, the schedules and the core helpers (one row a line)."""

# ruff: noqa: E501

from __future__ import annotations

import torch
from rel_table import Case

import unified_guidance as ug
from unified_guidance.core import Conditions, convert, drop_condition
from unified_guidance.core.checks import NonFiniteError
from unified_guidance.core.shapes import broadcast_like
from unified_guidance.core.spaces import check_space
from unified_guidance.data import two_d_mixture
from unified_guidance.guidance import (
    APG,
    CFGZeroStar,
    DynamicThreshold,
    Guidance,
    ModelReference,
    NormCap,
    Rescale,
    StaticClip,
)
from unified_guidance.guidance.functional import (
    apg,
    cfg,
    cfg_zero_star,
    dynamic_threshold,
    multi_cfg,
    norm_cap,
    project,
    rescale,
    static_clip,
)
from unified_guidance.guidance.registry import postprocess_from_name, rule_from_name
from unified_guidance.schedules import (
    Constant,
    Cosine,
    Decay,
    Interval,
    Linear,
    LinearBetaSchedule,
    Piecewise,
    Power,
    sigma_interval_to_progress,
)
from unified_guidance.schedules.scale import as_schedule, schedule_from_name

NAN, INF = float("nan"), float("inf")
C, U = torch.ones(2, 3), torch.zeros(2, 3)
LABELS = torch.tensor([0, 1, 2, 0])


def mixture():
    return two_d_mixture(path=LinearBetaSchedule(), space="eps", dtype=torch.float32)


def x4():
    return torch.randn(4, 2, generator=torch.Generator().manual_seed(0))


def guided(scale=2.0, **kwargs):
    return ug.guide(mixture(), Guidance(scale=scale, **kwargs))


def nan_at(t: torch.Tensor, index=(0, 0)) -> torch.Tensor:
    t = t.clone()
    t[index] = NAN
    return t


# fmt: off
CASES = [
    # -- pure rule functions: branches agree in shape, dtype, device; parameters are numbers in range
    Case("cfg shape", lambda: cfg(C, torch.zeros(2, 4), 2.0), ValueError, r"uncond: expected the shape of cond"),
    Case("cfg dtype", lambda: cfg(C, U.double(), 2.0), ValueError, r"uncond: expected the dtype of cond"),
    Case("cfg int cond", lambda: cfg(C.long(), U, 2.0), TypeError, r"cond: expected a floating-point tensor"),
    Case("cfg list cond", lambda: cfg([1.0], U, 2.0), TypeError, r"cond: expected a tensor, got list"),
    Case("cfg 0-dim", lambda: cfg(torch.tensor(1.0), torch.tensor(0.0), 2.0), ValueError, r"cond: expected a \(B, \.\.\.\)"),
    Case("cfg nan scale", lambda: cfg(C, U, NAN), ValueError, r"scale: expected a finite number, got nan"),
    Case("cfg inf scale", lambda: cfg(C, U, INF), ValueError, r"scale: expected a finite number, got inf"),
    Case("cfg bool scale", lambda: cfg(C, U, True), TypeError, r"scale: expected a number or a tensor, got bool"),
    Case("cfg str scale", lambda: cfg(C, U, "2"), TypeError, r"scale: expected a number or a tensor, got str"),
    Case("cfg scale batch", lambda: cfg(C, U, torch.ones(3)), ValueError, r"scale: expected a scalar or one value per sample \(batch 2\)"),
    Case("multi_cfg lengths", lambda: multi_cfg([C, C], U, [1.0]), ValueError, r"scales: expected 2 scales"),
    Case("multi_cfg shape", lambda: multi_cfg([C, torch.ones(2, 4)], U, [1.0, 1.0]), ValueError, r"uncond: expected the shape of conds\[1\]"),
    Case("multi_cfg nan", lambda: multi_cfg([C], U, [NAN]), ValueError, r"scales\[0\]: expected a finite number"),
    Case("rescale phi nan", lambda: rescale(C, U, NAN), ValueError, r"phi: expected a finite number, got nan"),
    Case("rescale phi 2", lambda: rescale(C, U, 2.0), ValueError, r"phi: expected a value in \[0.0, 1.0\], got 2.0"),
    Case("rescale shape", lambda: rescale(C, torch.zeros(2, 4), 0.5), ValueError, r"cond: expected the shape of guided"),
    Case("static_clip bound", lambda: static_clip(C, -1.0), ValueError, r"bound: expected a value in \[0.0, inf\]"),
    Case("static_clip nan", lambda: static_clip(C, NAN), ValueError, r"bound: expected a finite number"),
    Case("threshold p 1.5", lambda: dynamic_threshold(C, 1.5), ValueError, r"percentile: expected a value in \[0.0, 1.0\], got 1.5"),
    Case("threshold p nan", lambda: dynamic_threshold(C, NAN), ValueError, r"percentile: expected a finite number"),
    Case("threshold max 0.5", lambda: dynamic_threshold(C, 0.9, 0.5), ValueError, r"max_value: expected a value ≥ 1, got 0.5"),
    Case("threshold empty", lambda: dynamic_threshold(torch.zeros(2, 0), 0.9), ValueError, r"x0: expected a non-empty"),
    Case("norm_cap k", lambda: norm_cap(C, U, -1.0), ValueError, r"k: expected a value in \[0.0, inf\], got -1.0"),
    Case("norm_cap k nan", lambda: norm_cap(C, U, NAN), ValueError, r"k: expected a finite number"),
    Case("norm_cap device-less", lambda: norm_cap(C, U.half(), 1.0), ValueError, r"cond: expected the dtype of guided"),
    Case("apg eta nan", lambda: apg(C, U, 2.0, eta=NAN), ValueError, r"eta: expected a finite number"),
    Case("apg momentum 2", lambda: apg(C, U, 2.0, momentum=2.0), ValueError, r"momentum: expected a value in \[-1.0, 1.0\]"),
    Case("apg threshold -1", lambda: apg(C, U, 2.0, norm_threshold=-1.0), ValueError, r"norm_threshold: expected a value in \[0.0, inf\]"),
    Case("apg scale nan", lambda: apg(C, U, NAN), ValueError, r"scale: expected a finite number"),
    Case("apg shape", lambda: apg(C, torch.zeros(3, 3), 2.0), ValueError, r"uncond: expected the shape of cond"),
    Case(
        "apg state batch",
        lambda: apg(C, U, 2.0, momentum=-0.5, state=apg(torch.ones(4, 3), torch.zeros(4, 3), 2.0)[1]),
        ValueError,
        r"state: expected APG momentum for predictions of shape \(2, 3\), got \(4, 3\)",
    ),
    Case("apg state type", lambda: apg(C, U, 2.0, momentum=-0.5, state=3), ValueError, r"state: expected APG momentum.*got int"),
    Case("cfg_zero_star shape", lambda: cfg_zero_star(C, torch.zeros(2, 4), 2.0), ValueError, r"uncond: expected the shape"),
    Case("cfg_zero_star nan", lambda: cfg_zero_star(C, U, NAN), ValueError, r"scale: expected a finite number"),
    Case("project shape", lambda: project(C, torch.zeros(2, 4)), ValueError, r"onto: expected the shape of v"),
    # -- rule and post-process objects: parameters at construction
    Case("APG eta", lambda: APG(eta=NAN), ValueError, r"eta: expected a finite number"),
    Case("APG momentum", lambda: APG(momentum=-3.0), ValueError, r"momentum: expected a value in"),
    Case("APG threshold", lambda: APG(norm_threshold=-1.0), ValueError, r"norm_threshold: expected a value in"),
    Case("APG space", lambda: APG(space="pixels"), ValueError, r"space: unknown prediction space 'pixels'; valid spaces"),
    Case("CFGZeroStar zero_init", lambda: CFGZeroStar(zero_init=1.5), ValueError, r"zero_init: expected a value in"),
    Case("CFGZeroStar nan", lambda: CFGZeroStar(zero_init=NAN), ValueError, r"zero_init: expected a finite number"),
    Case("Rescale phi", lambda: Rescale(phi=1.5), ValueError, r"phi: expected a value in \[0.0, 1.0\], got 1.5"),
    Case("Rescale nan", lambda: Rescale(phi=NAN), ValueError, r"phi: expected a finite number"),
    Case("Rescale space", lambda: Rescale(space="x1"), ValueError, r"space: unknown prediction space"),
    Case("DynamicThreshold p", lambda: DynamicThreshold(percentile=99.5), ValueError, r"percentile: expected a value in"),
    Case("DynamicThreshold max", lambda: DynamicThreshold(max_value=0.5), ValueError, r"max_value: expected a value ≥ 1"),
    Case("StaticClip bound", lambda: StaticClip(bound=-1.0), ValueError, r"bound: expected a value in"),
    Case("NormCap k", lambda: NormCap(k=INF), ValueError, r"k: expected a finite number"),
    Case("rule name", lambda: rule_from_name("cfg++"), ValueError, r"rule: unknown rule 'cfg\+\+'; valid rules: cfg, apg"),
    Case("post name", lambda: postprocess_from_name("clip"), ValueError, r"post: unknown post-process 'clip'; valid ones"),
    # -- Guidance and GuidedModel
    Case("Guidance rule type", lambda: Guidance(rule=3), TypeError, r"rule: expected a Rule or a rule name, got int"),
    Case("Guidance rule name", lambda: Guidance(rule="cfgg"), ValueError, r"rule: unknown rule 'cfgg'"),
    Case("Guidance scale str", lambda: Guidance(scale="2"), TypeError, r"scale: expected a number or a Schedule, got str"),
    Case("Guidance scale nan", lambda: Guidance(scale=NAN), ValueError, r"scale: expected a finite number, got nan"),
    Case("Guidance scale inf", lambda: Guidance(scale=INF), ValueError, r"scale: expected a finite number, got inf"),
    Case("Guidance post str", lambda: Guidance(post="rescale"), TypeError, r"post: expected a sequence of post-processes, got 'rescale'"),
    Case("Guidance post obj", lambda: Guidance(post=Rescale()), TypeError, r"post: expected a sequence of post-processes"),
    Case("Guidance post item", lambda: Guidance(post=(3,)), TypeError, r"post: expected PostProcess objects or names, got int"),
    Case("Guidance post name", lambda: Guidance(post=("clip",)), ValueError, r"post: unknown post-process 'clip'"),
    Case("ModelReference condition", lambda: ModelReference(mixture(), condition="other"), ValueError, r"condition: expected 'same' or 'null'"),
    Case("GuidedModel model", lambda: ug.guidance.GuidedModel(torch.nn.Linear(2, 2), Guidance()), TypeError, r"model: expected a ConditionalModel, got Linear"),
    Case("GuidedModel guidance", lambda: ug.guidance.GuidedModel(mixture(), 2.0), TypeError, r"guidance: expected a Guidance, got float"),
    Case(
        "reference space",
        lambda: ug.guide(mixture(), Guidance(reference=ModelReference(two_d_mixture(path=LinearBetaSchedule(), space="x0")))),
        ValueError,
        r"reference: the reference model predicts 'x0' but the model predicts 'eps'",
    ),
    Case("guide scale str", lambda: ug.guide(mixture(), "high"), TypeError, r"guidance: expected a number, a Schedule or a Guidance, got str"),
    Case("call x list", lambda: guided()([[0.0, 0.0]], 0.5, LABELS), ValueError, r"x: expected a \(B, \.\.\.\) tensor, got list"),
    Case("call x 0-dim", lambda: guided()(torch.tensor(1.0), 0.5, LABELS), ValueError, r"x: expected a \(B, \.\.\.\) tensor"),
    Case("call x nan", lambda: guided()(nan_at(x4()), 0.5, LABELS), NonFiniteError, r"^x: expected finite values, got 1 non-finite"),
    Case("call x inf", lambda: guided()(x4() / 0.0, 0.5, LABELS), NonFiniteError, r"^x: expected finite values"),
    Case("call t shape 2B", lambda: guided()(x4(), torch.full((8,), 0.5), LABELS), ValueError, r"t: expected a scalar or shape \(4,\) \(the batch of x\), got shape \(8,\)"),
    Case("call t shape 2d", lambda: guided()(x4(), torch.full((4, 1), 0.5), LABELS), ValueError, r"t: expected a scalar or shape \(4,\)"),
    Case("call t 1.5", lambda: guided()(x4(), 1.5, LABELS), ValueError, r"t: expected times on the model's path, from 1 \(noise\) to 0 \(data\), got values in \[1.5, 1.5\]"),
    Case("call t -0.1", lambda: guided()(x4(), -0.1, LABELS), ValueError, r"t: expected times on the model's path"),
    Case("call t nan", lambda: guided()(x4(), NAN, LABELS), ValueError, r"t: expected times on the model's path"),
    Case("call cond batch", lambda: guided()(x4(), 0.5, LABELS[:3]), ValueError, r"cond: expected batch size 4 \(that of x\), got 3"),
    Case("call cond float", lambda: guided()(x4(), 0.5, LABELS.float()), TypeError, r"cond: expected integer class labels"),
    Case("call cond range", lambda: guided()(x4(), 0.5, LABELS + 7), ValueError, r"cond: expected labels in \[0, 3\]"),
    Case("call APG negative scale", lambda: ug.guide(mixture(), Guidance(rule="apg", scale=-1.0))(x4(), 0.5, LABELS), ValueError, r"scale: APG expects scales ≥ 0"),
    Case("call overflow", lambda: guided(3e38)(x4() * 1e3, 0.5, LABELS), NonFiniteError, r"guided prediction: expected finite values.*made by CFG\(\)"),
    Case("Conditions empty", lambda: Conditions((), ()), ValueError, r"conds: expected at least one condition"),
    Case("Conditions weights", lambda: Conditions((LABELS,), (1.0, 2.0)), ValueError, r"weights: expected 1 weights"),
    Case("Conditions nan weight", lambda: Conditions((LABELS,), (NAN,)), ValueError, r"weights: expected finite numbers, got \(nan,\)"),
    Case("Conditions str weight", lambda: Conditions((LABELS,), ("1",)), TypeError, r"weights: expected numbers, got str"),
    Case("Conditions batches", lambda: Conditions((LABELS, LABELS[:2]), (1.0, 1.0)), ValueError, r"conds/negative: expected one batch size"),
    Case("compose nan", lambda: Conditions.compose([(LABELS, NAN)]), ValueError, r"weights: expected finite numbers"),
    # -- schedules
    Case("Constant nan", lambda: Constant(NAN), ValueError, r"scale: expected a finite number"),
    Case("Constant str", lambda: Constant("2"), TypeError, r"scale: expected a number, got str"),
    Case("Linear tau_end", lambda: Linear(1.0, 3.0, tau_end=20.0), ValueError, r"tau_end: expected progress in \[0, 1\]"),
    Case("Linear equal taus", lambda: Linear(1.0, 3.0, tau_start=0.5, tau_end=0.5), ValueError, r"tau_end: expected tau_end > tau_start"),
    Case("Linear reversed", lambda: Linear(1.0, 3.0, tau_start=0.8, tau_end=0.2), ValueError, r"tau_end: expected tau_end ≥ tau_start"),
    Case("Linear start nan", lambda: Linear(NAN, 3.0), ValueError, r"start: expected a finite number"),
    Case("Cosine end inf", lambda: Cosine(1.0, INF), ValueError, r"end: expected a finite number"),
    Case("Power exponent", lambda: Power(1.0, 3.0, exponent=0.0), ValueError, r"exponent: expected a positive number"),
    Case("Decay half_life", lambda: Decay(3.0, half_life=0.0), ValueError, r"half_life: expected a positive number"),
    Case("Piecewise counts", lambda: Piecewise(values=(1.0, 2.0), boundaries=(0.2, 0.5)), ValueError, r"values: expected len\(boundaries\) \+ 1 = 3 values"),
    Case("Piecewise order", lambda: Piecewise(values=(1.0, 2.0, 1.0), boundaries=(0.8, 0.2)), ValueError, r"boundaries: expected increasing"),
    Case("Piecewise nan", lambda: Piecewise(values=(1.0, NAN), boundaries=(0.5,)), ValueError, r"values: expected a finite number"),
    Case("Interval lo", lambda: Interval(3.0, lo=-0.1), ValueError, r"lo: expected progress in \[0, 1\]"),
    Case("Interval order", lambda: Interval(3.0, lo=0.8, hi=0.2), ValueError, r"hi: expected hi ≥ lo"),
    Case("Interval scale", lambda: Interval(NAN), ValueError, r"scale: expected a finite number"),
    Case("schedule tau 2", lambda: Linear(1.0, 3.0)(2.0), ValueError, r"tau: expected values in \[0, 1\]"),
    Case("schedule tau nan", lambda: Linear(1.0, 3.0)(NAN), ValueError, r"tau: expected finite"),
    Case("as_schedule list", lambda: as_schedule([1.0]), TypeError, r"scale: expected a number or a Schedule, got list"),
    Case("schedule name", lambda: schedule_from_name("step"), ValueError, r"name: unknown schedule 'step'; valid schedules"),
    Case("sigma interval", lambda: sigma_interval_to_progress(LinearBetaSchedule(), 2.0, 1.0), ValueError, r"sigma_hi: expected 0 ≤ sigma_lo < sigma_hi"),
    Case("LinearBeta zero", lambda: LinearBetaSchedule(0.0, 0.0), ValueError, r"beta_max: expected beta_max ≥ beta_min = 0.0 and > 0"),
    Case("LinearBeta negative", lambda: LinearBetaSchedule(-0.1, 20.0), ValueError, r"beta_min: expected a value in \[0.0, inf\], got -0.1"),
    Case("LinearBeta nan", lambda: LinearBetaSchedule(0.1, NAN), ValueError, r"beta_max: expected a finite number, got nan"),
    Case("LinearBeta reversed", lambda: LinearBetaSchedule(20.0, 0.1), ValueError, r"beta_max: expected beta_max ≥ beta_min"),
    # -- core helpers
    Case("check_space", lambda: check_space("space", "rgb"), ValueError, r"space: unknown prediction space 'rgb'"),
    Case("convert token", lambda: convert(C, "logits", "eps"), ValueError, r"dst: cannot convert between token space 'logits'"),
    Case("convert no coeffs", lambda: convert(C, "eps", "x0"), ValueError, r"coeffs: converting 'eps' to 'x0' needs"),
    Case("broadcast_like", lambda: broadcast_like(torch.ones(3), C), ValueError, r"expected a scalar or one value per sample \(batch 2\)"),
    Case("drop_condition p", lambda: drop_condition(LABELS, 3, 1.5), ValueError, r"p: expected a probability in \[0, 1\], got 1.5"),
    Case("FunctionModel space", lambda: ug.core.FunctionModel(lambda x, t, c: x, space="pix"), ValueError, r"space: unknown prediction space 'pix'"),
    Case("null_cond missing", lambda: ug.guide(ug.core.FunctionModel(lambda x, t, c: x, space="eps", path=LinearBetaSchedule()), 2.0)(x4(), 0.5, LABELS), ValueError, r"null_cond: FunctionModel was built without a null condition"),
]
# fmt: on
