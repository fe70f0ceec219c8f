"""The sweep runs through Lightning's Trainer.predict: exact forward-row counts, resume, two CPU processes."""

import pytest
import torch

from unified_guidance.data import two_d_mixture
from unified_guidance.demo.standin import MixtureSampler
from unified_guidance.guidance import Guidance
from unified_guidance.schedules import Interval, LinearBetaSchedule
from unified_guidance.training.predict import WorkItem, predict_sweep
from unified_guidance.training.results import DamagedResultWarning

STEPS, N = 10, 6


def sweep_items():
    interval = Guidance(scale=Interval(3.0, 0.0, 0.5))
    settings = [("cfg", Guidance(scale=3.0)), ("cfg1", Guidance(scale=1.0)), ("interval", interval)]
    items = []
    for name, g in settings:
        for label in range(2):
            items.append(WorkItem(len(items), f"mix/{name}/{label}", label, N, seed=100 + label, guidance=g))
    return items


def sampler():
    return MixtureSampler(two_d_mixture(path=LinearBetaSchedule()), steps=STEPS)


def test_predict_counts_forward_rows_exactly_and_resumes(tmp_path):
    items = sweep_items()
    results = predict_sweep(sampler(), items, tmp_path, progress=False)
    rows = {r.key: r.forward_rows for r in results}
    # Guided: cond + ∅ rows every step; s = 1: cond rows only;
    # interval τ ∈ [0, 0.5]: the steps starting at τ = 0, 0.1, …, 0.5 are guided (6 of 10).
    assert rows["mix/cfg/0"] == 2 * N * STEPS
    assert rows["mix/cfg1/0"] == N * STEPS
    assert rows["mix/interval/1"] == N * STEPS + N * 6
    assert all(r.samples.shape == (N, 2) and r.rank == 0 for r in results)
    # A second run finds every item on disk and samples nothing (an exploding sampler proves it).
    broken = sampler()
    broken.sample = None  # any call would raise
    again = predict_sweep(broken, items, tmp_path, progress=False)
    assert all(torch.equal(a.samples, b.samples) for a, b in zip(results, again, strict=True))


def test_predict_spreads_over_two_cpu_processes(tmp_path):
    items = sweep_items()
    single = predict_sweep(sampler(), items, tmp_path / "one", progress=False)
    double = predict_sweep(sampler(), items, tmp_path / "two", devices=2, strategy="ddp_fork", progress=False)
    assert {r.rank for r in double} == {0, 1}
    for a, b in zip(single, double, strict=True):
        assert a.key == b.key and a.forward_rows == b.forward_rows
        torch.testing.assert_close(a.samples, b.samples)


class CountingSampler(MixtureSampler):
    """The mixture sampler, counting how many items it samples."""

    calls = 0

    def sample(self, labels, guidance, *, generator=None):
        CountingSampler.calls += 1
        return super().sample(labels, guidance, generator=generator)


def test_an_interrupted_sweep_resamples_only_the_missing_items(tmp_path):
    items = sweep_items()
    first = predict_sweep(sampler(), items, tmp_path, progress=False)
    for index in (1, 4):  # as if the run stopped before these two were written
        (tmp_path / f"item-{index:05d}.pt").unlink()
    (tmp_path / "item-00002.pt").write_bytes(b"truncated")  # and one was cut short
    CountingSampler.calls = 0
    model = two_d_mixture(path=LinearBetaSchedule())
    with pytest.warns(DamagedResultWarning, match="item-00002.pt: does not load"):
        again = predict_sweep(CountingSampler(model, steps=STEPS), items, tmp_path, progress=False)
    assert CountingSampler.calls == 3
    assert all(torch.equal(a.samples, b.samples) for a, b in zip(first, again, strict=True))
