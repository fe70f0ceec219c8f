"""Sweep result files carry their checksum: a damaged one is resampled with a warning, never reused."""

import pytest
import torch
from test_demo_predict import CountingSampler, sampler, sweep_items

from unified_guidance.data import two_d_mixture
from unified_guidance.schedules import LinearBetaSchedule
from unified_guidance.training.predict import predict_sweep
from unified_guidance.training.results import DamagedResultWarning, fields_digest


def test_a_flipped_bit_and_inf_samples_are_resampled_with_a_warning(tmp_path):
    items = sweep_items()
    first = predict_sweep(sampler(), items, tmp_path, progress=False)
    flipped = torch.load(tmp_path / "item-00001.pt", weights_only=True)
    flipped["samples"].view(torch.int64)[0, 0] ^= 1  # one bit of one sample, checksum left as it was
    torch.save(flipped, tmp_path / "item-00001.pt")
    inf = torch.load(tmp_path / "item-00003.pt", weights_only=True)
    inf["samples"][0, 0] = float("inf")
    inf["sha256"] = fields_digest(inf)  # a consistent file whose samples are not finite
    torch.save(inf, tmp_path / "item-00003.pt")
    CountingSampler.calls = 0
    model = two_d_mixture(path=LinearBetaSchedule())
    with pytest.warns(DamagedResultWarning) as caught:
        again = predict_sweep(CountingSampler(model, steps=10), items, tmp_path, progress=False)
    reasons = sorted(str(w.message) for w in caught)
    assert any("item-00001.pt: checksum mismatch" in r for r in reasons)
    assert any("item-00003.pt: non-finite samples" in r for r in reasons)
    assert CountingSampler.calls == 2  # only the two damaged items
    assert all(torch.equal(a.samples, b.samples) for a, b in zip(first, again, strict=True))
