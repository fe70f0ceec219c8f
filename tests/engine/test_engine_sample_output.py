"""One result type for every sampler: samples and a frozen cost record; counters that can be reset."""

import dataclasses

import pytest
import torch

import unified_guidance as ug
from unified_guidance.data import two_d_mixture
from unified_guidance.guidance import SampleOutput, SampleStats
from unified_guidance.schedules import Interval, LinearBetaSchedule, LinearFlowPath

LABELS = torch.tensor([0, 1, 2, 1])


def noise():
    return torch.randn(4, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)


def test_diffusion_and_flow_samplers_return_the_same_type_that_unpacks(float64):
    eps = two_d_mixture(path=LinearBetaSchedule())
    velocity = two_d_mixture(path=LinearFlowPath(), space="velocity")
    g = ug.Guidance(scale=Interval(3.0, lo=0.15, hi=0.85))
    outputs = {
        "ddim": ug.diffusion.sample(eps, g, None, LABELS, steps=10, noise=noise()),
        "euler": ug.flow.sample(velocity, g, noise(), LABELS, method="euler", steps=10),
    }
    for name, out in outputs.items():
        assert type(out) is SampleOutput and type(out.stats) is SampleStats, name
        x, stats = out
        assert x is out.samples and stats is out.stats and x.shape == (4, 2)
        # τ = i/10 at the steps' starts: the interval [0.15, 0.85] skips the reference at i = 0, 1, 9
        assert (stats.nfe, stats.steps, stats.forward_calls) == (10, 10, 10), name
        assert (stats.skipped_reference, stats.skipped_rows) == (3, 3 * 4), name
        assert stats.forward_rows == 7 * 2 * 4 + 3 * 4, name
        with pytest.raises(dataclasses.FrozenInstanceError):
            stats.nfe = 0  # type: ignore[misc]
        with pytest.raises(dataclasses.FrozenInstanceError):
            out.samples = x  # type: ignore[misc]
    assert eps.stats.rows == outputs["ddim"].stats.forward_rows
    assert velocity.stats.rows == outputs["euler"].stats.forward_rows


def test_a_run_counts_only_its_own_forwards(float64):
    model = two_d_mixture(path=LinearBetaSchedule())
    model(noise(), 0.5, LABELS)  # forwards before the run are not the run's
    _, stats = ug.diffusion.sample(model, 2.0, None, LABELS, steps=3, noise=noise())
    assert (stats.forward_calls, stats.forward_rows) == (3, 3 * 2 * 4)
    assert (model.stats.calls, model.stats.rows) == (4, 4 + 3 * 2 * 4)


def test_forward_counters_reset_on_the_model_and_through_the_guided_model(float64):
    model = two_d_mixture(path=LinearBetaSchedule())
    other = two_d_mixture(path=LinearBetaSchedule())
    weak = ug.guidance.ModelReference(other)
    guided = ug.guide(model, ug.Guidance(scale=Interval(3.0, lo=0.5, hi=1.0), reference=weak))
    guided(noise(), torch.tensor(0.9), LABELS)  # τ = 0.1: outside the interval, reference skipped
    guided(noise(), torch.tensor(0.2), LABELS)  # τ = 0.8: both branches
    assert (model.stats.calls, model.stats.rows, other.stats.rows) == (2, 8, 4)
    assert (guided.stats.calls, guided.stats.skipped_reference) == (2, 1)
    model.reset_stats()
    assert model.stats == ug.core.model.ForwardStats(0, 0) and other.stats.rows == 4
    guided.reset_stats()  # the guided model's counters, its model's and its reference models'
    assert (guided.stats.calls, guided.stats.skipped_reference, guided.stats.skipped_rows) == (0, 0, 0)
    assert model.stats.rows == other.stats.rows == 0
    guided(noise(), torch.tensor(0.2), LABELS)
    assert (model.stats.calls, model.stats.rows, other.stats.rows, guided.stats.calls) == (1, 4, 4, 1)
