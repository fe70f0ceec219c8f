"""Each paradigm's runner meets the demo's contract: range, seeding, forward rows, every method."""

import pytest
import torch

from unified_guidance.demo.runners import PARADIGMS, get_runner
from unified_guidance.demo.sweep import HIGH_SCALES, guidance_for
from unified_guidance.guidance import Guidance


@pytest.mark.parametrize("name", PARADIGMS)
def test_untrained_module_samples_in_range_counts_rows_and_is_seeded(name):
    runner = get_runner(name)
    module = runner.make(runner.config(quick=True))
    labels = torch.tensor([0, 7])  # two classes, one sample each

    def draw(scale):
        before = module.model.stats.rows
        x = module.sample(labels, Guidance(scale=scale), generator=torch.Generator().manual_seed(0))
        return x, module.model.stats.rows - before

    x, rows_guided = draw(3.0)
    again, _ = draw(3.0)
    _, rows_plain = draw(1.0)
    assert x.shape == (2, 1, 8, 8) and bool((x.abs() <= 1).all())
    assert torch.equal(x, again)  # the demo's fixed seeds mean fixed samples
    # s = 1 skips the reference branch; the token model's prefill runs its two identical null rows once.
    assert rows_guided == 2 * rows_plain - (1 if name == "autoregressive" else 0) > 0


@pytest.mark.parametrize("name", PARADIGMS)
def test_every_listed_method_builds_and_samples(name):
    runner = get_runner(name)
    module = runner.make(runner.config(quick=True))
    for method in runner.methods:
        g = guidance_for(method, HIGH_SCALES[-1], runner.params)
        x = module.sample(torch.tensor([3]), g, generator=torch.Generator().manual_seed(1))
        assert x.shape == (1, 1, 8, 8) and bool(torch.isfinite(x).all()), method
