"""The demo's guidance-free rows on a tiny real diffusion model: fine-tuned from the cached CFG model,
cached under the parent's checksum, sampled with the CFG rows' seeds, compared at equal and half cost."""

import pytest
import torch
from demo_support import NearestMean

from unified_guidance.data import load_digits_split
from unified_guidance.demo.cache import CheckpointCache
from unified_guidance.demo.evaluate import reference
from unified_guidance.demo.guidance_free import QUICK_SCALES, gft_config, init_from, plan_rows
from unified_guidance.demo.report import leaderboard_section
from unified_guidance.demo.run import DemoOptions, run_paradigm
from unified_guidance.demo.runners import get_runner
from unified_guidance.demo.runners.diffusion import DiffusionRunner

STEPS, N = 3, 3  # DDIM steps (odd: the equal-cost CFG rows take ⌈3/2⌉ = 2), samples per class


class TinyDiffusion(DiffusionRunner):
    def config(self, quick):
        return super().config(quick) | {"width": 8, "max_steps": 20, "batch_size": 16, "sample_steps": STEPS}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("gft")
    evaluator, split = NearestMean(), load_digits_split(0.2, seed=0)
    ref = reference(evaluator, split.train_images, split.train_labels)
    opts = DemoOptions(out=out, quick=True, samples_per_class=N, k=2, scales=(0.0, 1.0, 2.0, 3.0), high_scales=(),
                       methods=("cfg", "gft"), figures=False, bootstrap=20, progress=False)  # fmt: skip
    cache = CheckpointCache(out / "cache")
    first = run_paradigm(TinyDiffusion(), opts, evaluator, ref, out, cache)
    second = run_paradigm(TinyDiffusion(), opts, evaluator, ref, out, cache)
    return first, second


def test_the_rows_cost_half_of_cfg_and_no_more_than_the_equal_cost_cfg(runs):
    rows, _, _ = runs[0]
    by = {(r["method"], r["scale"]): r for r in rows}
    for s in QUICK_SCALES:
        assert by["gft", s]["forward_rows"] == 10 * N * STEPS  # one forward of B rows a step
        assert by["cfg", s]["forward_rows"] == 2 * 10 * N * STEPS
        assert by["cfg_matched", s]["forward_rows"] == 2 * 10 * N * 2  # ⌈3/2⌉ steps of 2B rows
        assert by["gft", s]["samples"] == by["cfg", s]["samples"] == 10 * N
    assert sorted(k for k in by if k[0] != "cfg") == [("cfg_matched", 2.0), ("cfg_matched", 3.0), ("gft", 2.0),
                                                       ("gft", 3.0)]  # fmt: skip


def test_the_fine_tuned_model_is_cached_under_the_parents_checksum(runs):
    (rows1, meta1, _), (rows2, meta2, _) = runs
    free1, free2 = meta1["guidance_free"], meta2["guidance_free"]
    assert (free1["checkpoint"]["status"], free2["checkpoint"]["status"]) == ("trained", "loaded")
    config = free1["config"]
    assert config == gft_config(meta1["config"], meta1["checkpoint"]["sha256"])
    assert config["objective"] == "gft" and config["max_steps"] == 2 and config["parent_steps"] == 20
    assert gft_config(meta1["config"], "0" * 64) != config  # another parent: another cache entry
    assert [r["recall"] for r in rows1] == [r["recall"] for r in rows2]
    assert meta1["methods"] == ["cfg", "cfg_matched", "gft"]


def test_the_comparison_pairs_each_gft_row_with_cfg_at_half_and_equal_cost(runs):
    rows, meta, _ = runs[0]
    result = meta["guidance_free"]["comparison"]
    by = {(r["method"], r["scale"]): r for r in rows}
    assert [e["scale"] for e in result["settings"]] == list(QUICK_SCALES)
    for e in result["settings"]:
        half, equal = e["half_cost"], e["equal_cost"]
        assert (half["baseline"]["method"], equal["baseline"]["method"]) == ("cfg", "cfg_matched")
        assert half["baseline"]["rows_per_sample"] == 2 * e["rows_per_sample"] == 2 * STEPS
        d, lo, hi = half["difference"]["recall"]
        assert d == by["gft", e["scale"]]["recall"] - by["cfg", e["scale"]]["recall"] and lo <= d <= hi
    report = {"rows": rows, "meta": {"paradigms": ["diffusion"], "runs": {"diffusion": meta}, "bootstrap": 20}}
    md = "\n".join(leaderboard_section(report))
    assert "#### diffusion: guidance-free (GFT) against CFG" in md
    assert f"| 2 | {STEPS} | half cost: cfg s=2 | {2 * STEPS} |" in md
    assert f"| 2 | {STEPS} | equal cost: cfg_matched s=2 | 4 |" in md


def test_init_from_loads_the_parent_so_every_beta_gives_its_conditional_model():
    runner = TinyDiffusion()
    config = runner.config(True)
    parent = runner.make(config)
    with torch.no_grad():
        for i, p in enumerate(parent.net.parameters()):
            p.add_(0.01 * (i % 3 + 1))  # as if trained (the U-Net's head starts at zero)
        parent.ema.update_parameters(parent.net)  # the first update copies
        for p in parent.net.parameters():
            p.add_(0.01)  # the raw weights move on: they differ from the average
    child = runner.make(gft_config(config, "0" * 64))
    init_from(child, parent)
    assert child.trained_model.guidance_input and int(child.ema.n_averaged) == 0
    x, t, y = torch.randn(4, 1, 8, 8), torch.tensor(0.5), torch.tensor([0, 1, 2, 10])
    c = parent.model(x, t, y)  # the parent's sampling (EMA) weights start both of the child's models
    assert not torch.equal(c, parent.trained_model(x, t, y))
    for beta in (1.0, 0.5, 0.2):
        assert torch.equal(child.trained_model(x, t, y, beta=beta), c)
        assert torch.equal(child.model(x, t, y, beta=beta), c)
    with pytest.raises(ValueError, match=r"parent: expected a checkpoint of the same network \(the strength input"):
        init_from(child, get_runner("flow").make(get_runner("flow").config(True)))


@pytest.mark.parametrize("name", ["diffusion", "flow_dit", "autoregressive"])
def test_every_guidance_free_runner_starts_from_its_parents_sampling_weights(name):
    runner = get_runner(name)
    config = runner.config(True)
    parent, child = runner.make(config), runner.make(gft_config(config, "0" * 64))
    with torch.no_grad():
        for p in parent.model.parameters():
            p.add_(0.5)  # the parent's sampling weights, set apart from the child's initial ones
    init_from(child, parent)
    source = parent.model.state_dict()
    for model in {id(m): m for m in (getattr(child, "trained_model", child.model), child.model)}.values():
        state = {k.replace("net.module.", "net."): v for k, v in model.state_dict().items() if k != "net.n_averaged"}
        given = {k.replace("net.module.", "net."): v for k, v in source.items() if k != "net.n_averaged"}
        assert state.keys() - given.keys() and all(".strength." in f".{k}" for k in state.keys() - given.keys())
        assert all(torch.equal(state[k], v) for k, v in given.items())
        assert model.guidance_input


def test_which_runners_have_rows_and_at_which_scales():
    scales = (0.0, 1.0, 2.0, 3.0, 8.0)
    quick = plan_rows(get_runner("diffusion"), {"sample_steps": 25}, quick=True, scales=scales)
    assert [s.scale for s in quick.gft] == [s.scale for s in quick.matched] == list(QUICK_SCALES)
    assert quick.options == {"cfg_matched": (("steps", 13),)}
    full = plan_rows(get_runner("flow_dit"), {"sample_steps": 12}, quick=False, scales=scales)
    assert [s.scale for s in full.gft] == [1.0, 2.0, 3.0, 8.0]  # β = 1/s needs s ≥ 1
    assert full.options == {"cfg_matched": (("steps", 6),)}
    assert plan_rows(get_runner("flow"), {"sample_steps": 12}, quick=True, scales=scales).gft == ()
    runner = get_runner("diffusion")  # the fine-tuning's progress is told apart from the parent's training
    assert (runner.label(runner.config(True)), runner.label(gft_config(runner.config(True), ""))) == (
        "diffusion", "diffusion (gft)")  # fmt: skip
    ar = get_runner("autoregressive")
    tokens = plan_rows(ar, ar.config(True), quick=True, scales=scales)  # 64 tokens: no steps to halve
    assert [s.scale for s in tokens.gft] == list(QUICK_SCALES) and tokens.matched == () and tokens.options is None
