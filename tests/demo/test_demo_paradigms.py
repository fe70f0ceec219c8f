"""Each paradigm's runner meets the demo's contract: range, seeding, forward rows, every method."""

import pytest
import torch

import unified_guidance as ug
from unified_guidance.demo.runners import PARADIGMS, get_runner
from unified_guidance.demo.sweep import HIGH_SCALES, guidance_for, sampler_options
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
        g, options = guidance_for(method, HIGH_SCALES[-1], runner.params), sampler_options(method, runner.params)
        x = module.sample(torch.tensor([3]), g, generator=torch.Generator().manual_seed(1), **dict(options))
        assert x.shape == (1, 1, 8, 8) and bool(torch.isfinite(x).all()), method


def test_solver_level_methods_sample_through_the_modules_with_the_sweeps_noise():
    """CFG++ and Rectified-CFG++ go through ``module.sample(..., method=…)``: the same noise draw and
    step count as the module's plain sampler, the paradigm's public solver (no demo-side adapter)."""
    labels, s = torch.tensor([3, 5]), HIGH_SCALES[-1]
    flow = get_runner("flow")
    module = flow.make(flow.config(quick=True))
    x = module.sample(labels, guidance_for("rectified_cfgpp", s), generator=torch.Generator().manual_seed(2),
                      **dict(sampler_options("rectified_cfgpp", flow.params)))  # fmt: skip
    noise = torch.randn((2, *module.hparams.sample_shape), generator=torch.Generator().manual_seed(2))
    direct, stats = ug.flow.rectified.rectified_cfgpp(module.model, s, noise, labels, steps=module.hparams.sample_steps)
    assert torch.equal(x, direct.clamp(-1.0, 1.0)) and stats.steps == module.hparams.sample_steps
    diffusion = get_runner("diffusion")
    module = diffusion.make(diffusion.config(quick=True))
    x = module.sample(labels, guidance_for("cfgpp", s), generator=torch.Generator().manual_seed(2),
                      **dict(sampler_options("cfgpp", diffusion.params)))  # fmt: skip
    direct, _ = ug.diffusion.sample(module.model, s, (2, 1, 8, 8), labels, steps=module.hparams.sample_steps,
                                    method="ddim_cfgpp", generator=torch.Generator().manual_seed(2))  # fmt: skip
    assert torch.equal(x, direct.clamp(-1.0, 1.0))
