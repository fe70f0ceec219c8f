"""The newer typed rules inside the guided model: adaptive guidance's per-sample row saving,
Perp-Neg over a composition, and each typed rule equal to its pure function."""

import pytest
import torch

import unified_guidance as ug
from tests.engine import conftest as engine_inputs
from unified_guidance.core import Conditions
from unified_guidance.guidance import CFG, FDG, TCFG, Adaptive, Guidance, MamboG, PerpNeg
from unified_guidance.guidance.frequency import fdg
from unified_guidance.guidance.functional import cfg, cosine, mambo_g, perp_neg, tcfg
from unified_guidance.guidance.registry import RULES, rule_from_name

LABELS = torch.tensor([0, 1, 2, 0, 1, 2])


def x_batch(n=6, seed=0):
    return engine_inputs.x_batch(n, seed)


def test_adaptive_stops_the_reference_per_sample_and_counts_the_rows(mixture):
    x, t1, t2 = x_batch(), torch.tensor(0.6), torch.tensor(0.4)
    c1, u1 = mixture(x, t1, LABELS), mixture(x, t1, None)
    cos = cosine(c1, u1)
    gamma = float(cos.median())
    done = cos >= gamma
    assert 0 < int(done.sum()) < len(LABELS)

    guided = ug.guide(mixture, Guidance(rule=Adaptive(gamma=gamma), scale=4.0))
    mixture.reset_stats()
    out1 = guided(x, t1, LABELS)  # every sample still guided on the first call
    torch.testing.assert_close(out1, cfg(c1, u1, 4.0))
    assert mixture.stats.rows == 2 * len(LABELS)

    out2 = guided(x, t2, LABELS)
    n_active = int((~done).sum())
    assert mixture.stats.rows == 2 * len(LABELS) + len(LABELS) + n_active
    assert guided.stats.skipped_rows == len(LABELS) - n_active
    c2, u2 = mixture(x, t2, LABELS), mixture(x, t2, None)
    torch.testing.assert_close(out2[done], c2[done])
    torch.testing.assert_close(out2[~done], cfg(c2, u2, 4.0)[~done])


def test_adaptive_once_every_sample_agrees_runs_the_conditional_branch_alone(mixture):
    x, t = x_batch(), torch.tensor(0.5)
    guided = ug.guide(mixture, Guidance(rule=Adaptive(gamma=-1.0), scale=4.0))  # cos ≥ −1 always
    guided(x, t, LABELS)
    mixture.reset_stats()
    out = guided(x, t, LABELS)
    assert mixture.stats == ug.core.ForwardStats(calls=1, rows=len(LABELS))
    assert guided.stats.skipped_reference == 1
    torch.testing.assert_close(out, mixture(x, t, LABELS))
    guided.reset()  # a new generation guides again
    mixture.reset_stats()
    guided(x, t, LABELS)
    assert mixture.stats.rows == 2 * len(LABELS)


def test_adaptive_refuses_a_new_batch_without_reset(mixture):
    guided = ug.guide(mixture, Guidance(rule=Adaptive(gamma=0.5), scale=3.0))
    guided(x_batch(), torch.tensor(0.5), LABELS)
    with pytest.raises(ValueError, match="call reset"):
        guided(x_batch(3), torch.tensor(0.5), LABELS[:3])
    with pytest.raises(TypeError, match="rule: expected a non-adaptive Rule"):
        Adaptive(rule=Adaptive())


def test_perp_neg_rule_over_a_composition_equals_the_function(mixture):
    x, t = x_batch(), torch.tensor(0.5)
    negative = (LABELS + 1) % 3
    spec = Conditions.compose([(LABELS, 1.0), (negative, -0.7)])
    out = ug.guide(mixture, Guidance(rule=PerpNeg(), scale=5.0))(x, t, spec)
    assert mixture.stats.rows == 3 * len(LABELS)  # positive, negative and ∅ in one forward
    c, n, u = mixture(x, t, LABELS), mixture(x, t, negative), mixture(x, t, None)
    torch.testing.assert_close(out, perp_neg(c, u, [n], 5.0, 0.7))


@pytest.mark.parametrize(
    ("rule", "fn"),
    [
        (TCFG(), lambda c, u, s: tcfg(c, u, s)),
        (MamboG(alpha=2.0), lambda c, u, s: mambo_g(c, u, s, 2.0)),
        (FDG(ratios=(1.0, 0.25), parallel_weights=(0.5, 1.0), space=None),
         lambda c, u, s: fdg(c, u, (s, 1 + (s - 1) * 0.25), (0.5, 1.0))),
    ],
)  # fmt: skip
def test_typed_rules_are_their_functions(rule, fn):
    gen = torch.Generator().manual_seed(1)
    c, u = (torch.randn(2, 1, 8, 8, generator=gen, dtype=torch.float64) for _ in range(2))
    out, state = rule(c, u, torch.tensor(6.0, dtype=torch.float64), tau=torch.tensor(0.5))
    assert state is None
    torch.testing.assert_close(out, fn(c, u, 6.0))


def test_registry_builds_the_new_rules_and_validates_parameters():
    assert {"tcfg", "fdg", "mambo_g", "perp_neg", "adaptive"} <= set(RULES)
    assert isinstance(rule_from_name("adaptive", gamma=0.9).rule, CFG)
    with pytest.raises(ValueError, match="alpha: expected a value in"):
        MamboG(alpha=-1.0)
    with pytest.raises(ValueError, match="parallel_weights: expected 2 weights"):
        FDG(ratios=(1.0, 0.5), parallel_weights=(1.0,))
    with pytest.raises(ValueError, match="gamma: expected a value in"):
        Adaptive(gamma=2.0)
