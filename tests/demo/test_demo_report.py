"""A tiny real run of the whole demo on the stand-in paradigm: files, schema, counts, behaviour."""

import json

import pytest
import torch
from demo_support import NearestMean

from unified_guidance.data import GaussianMixture, load_digits_split
from unified_guidance.demo.claims import evidence
from unified_guidance.demo.cli import main
from unified_guidance.demo.report import ROW_FIELDS, failure_mode
from unified_guidance.demo.run import DemoOptions, run_demo
from unified_guidance.demo.standin import ClassGaussians
from unified_guidance.schedules import LinearBetaSchedule

STEPS, N = 10, 6  # the mixture runner's quick DDIM steps; samples per class


def options(out):
    return DemoOptions(
        out=out, quick=True, paradigms=("mixture",), samples_per_class=N, scales=(0.0, 1.0, 3.0, 15.0),
        high_scales=(15.0,), methods=("cfg", "rescale", "interval"), bayes_scales=(1.0, 8.0), bayes_samples=60,
        bayes_steps=10, progress=False,
    )  # fmt: skip


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    evaluator = NearestMean()
    first = run_demo(options(out), evaluator=evaluator)
    second = run_demo(options(out), evaluator=evaluator)
    return out, first, second


def test_report_json_schema(run):
    out, _, report = run  # the second run wrote the files last
    on_disk = json.loads((out / "report.json").read_text())
    assert on_disk == json.loads(json.dumps(report))
    assert set(on_disk) == {"rows", "meta"}
    assert all(tuple(row) == ROW_FIELDS and row["paradigm"] == "mixture" for row in on_disk["rows"])
    plain = [r for r in on_disk["rows"] if r["method"] == "cfg"]
    assert [r["scale"] for r in plain] == [0.0, 1.0, 3.0, 15.0]
    assert {r["method"] for r in on_disk["rows"]} == {"cfg", "rescale", "interval"}
    assert all(r["samples"] == 10 * N for r in on_disk["rows"])
    assert on_disk["meta"]["evaluator"]["feature_dim"] == 64


def test_forward_rows_are_counted_and_interval_costs_less(run):
    rows = {(r["method"], r["scale"]): r for r in run[1]["rows"]}
    assert rows["cfg", 1.0]["forward_rows"] == 10 * N * STEPS  # s = 1: no reference branch
    assert rows["cfg", 3.0]["forward_rows"] == 2 * 10 * N * STEPS
    assert rows["interval", 15.0]["forward_rows"] < rows["cfg", 15.0]["forward_rows"]


def test_guidance_raises_adherence_and_narrows_recall(run):
    rows = {(r["method"], r["scale"]): r for r in run[1]["rows"]}
    assert rows["cfg", 0.0]["adherence"] < 0.5 < 0.9 < rows["cfg", 3.0]["adherence"]
    assert rows["cfg", 15.0]["recall"] < rows["cfg", 1.0]["recall"]
    assert rows["cfg", 15.0]["saturation"] > rows["cfg", 1.0]["saturation"]


def test_report_md_and_figures(run):
    out = run[0]
    md = (out / "report.md").read_text()
    assert "| s | samples | adherence | precision | recall | FD | at ±1 | rows/sample | failure mode |" in md
    for scale in ("0", "1", "3", "15"):
        assert f"| {scale} | ![s={scale}](figures/mixture_s{scale}.png) |" in md
    figs = [out / f"figures/mixture_s{s}.png" for s in ("0", "1", "3", "15")]
    figs += [out / "figures/tradeoff.png", out / "figures/bayes_view.png"]
    assert all(f.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for f in figs)
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]  # no half-written files


def test_second_run_reuses_the_cached_model_and_samples(run):
    _, first, second = run
    assert first["meta"]["runs"]["mixture"]["checkpoint"]["status"] == "trained"
    assert second["meta"]["runs"]["mixture"]["checkpoint"]["status"] == "loaded"
    assert [r["precision"] for r in first["rows"]] == [r["precision"] for r in second["rows"]]


def test_cli_reports_an_unwritable_output_dir(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main(["demo", "--quick", "--out", str(blocker / "out")]) == 2
    assert "--out: expected a writable directory" in capsys.readouterr().err


def test_cli_rejects_unknown_paradigm(capsys):
    with pytest.raises(SystemExit):
        main(["demo", "--paradigms", "diffusion,gan"])
    listed = "diffusion, flow, diffusion_dit, flow_dit, autoregressive, mixture"
    assert f"expected a comma-separated list of {listed}" in capsys.readouterr().err


def test_class_gaussians_match_the_exact_mixture(float64):
    split = load_digits_split(0.2, seed=0)
    fast = ClassGaussians().fit(split.train_images, split.train_labels)
    covs = torch.einsum("kde,ke,kfe->kdf", fast.eigvecs, fast.eigvals, fast.eigvecs)
    exact = GaussianMixture(fast.means, covs, fast.log_weights.exp(), torch.arange(10), path=LinearBetaSchedule())
    x = torch.randn(8, 64, generator=torch.Generator().manual_seed(0))
    labels = torch.tensor([0, 3, 10, 9, 10, 1, 2, 5])  # 10 = ∅
    for t in (0.05, 0.5, 0.99):
        torch.testing.assert_close(fast(x, t, labels), exact(x, t, labels), rtol=1e-9, atol=1e-9)


def rows_of(paradigm, table):
    """Rows from ``(method, scale, adherence, precision, recall, forward_rows)`` tuples."""
    keys = ("method", "scale", "adherence", "precision", "recall", "forward_rows")
    return [{"paradigm": paradigm, **dict(zip(keys, t, strict=True))} for t in table]


def test_evidence_checks_each_claim():
    good = rows_of("flow", [
        ("cfg", 0.0, 0.1, 0.2, 0.9, 100), ("cfg", 1.0, 0.8, 0.8, 0.8, 50), ("cfg", 3.0, 0.97, 0.9, 0.6, 100),
        ("cfg", 8.0, 0.99, 0.85, 0.4, 100), ("cfg", 15.0, 0.99, 0.7, 0.2, 100),
        ("rescale", 8.0, 0.98, 0.88, 0.5, 100), ("apg", 15.0, 0.97, 0.8, 0.3, 100),
        ("interval", 8.0, 0.99, 0.8, 0.4, 70), ("interval", 15.0, 0.9, 0.9, 0.9, 70),
    ])  # fmt: skip
    good += [
        {"paradigm": "flow", "method": "cfg", "scale": 2.0, "adherence": 0.95, "precision": 0.9, "recall": 0.7,
         "forward_rows_per_sample": 20.0, "ci": {"adherence": [0.9, 0.99], "precision": [0.8, 0.95],
                                                  "recall": [0.6, 0.8]}},
        {"paradigm": "flow", "method": "gft", "scale": 2.0, "adherence": 0.93, "precision": 0.85, "recall": 0.75,
         "forward_rows_per_sample": 10.0},
    ]  # fmt: skip
    assert all(evidence(good, "flow").values())
    good[-1] |= {"recall": 0.85}  # above CFG's interval [0.6, 0.8]: better counts
    assert evidence(good, "flow")["gft_half_cost"] is True
    good[-1] |= {"forward_rows_per_sample": 12.0}  # within the intervals, but at more than half CFG's rows
    assert evidence(good, "flow")["gft_half_cost"] is False
    good[-1] |= {"forward_rows_per_sample": 10.0, "precision": 0.75}  # half the rows, precision below [0.8, 0.95]
    assert evidence(good, "flow")["gft_half_cost"] is False
    bad = rows_of("ar", [
        ("cfg", 1.0, 0.9, 0.8, 0.5, 50), ("cfg", 3.0, 0.93, 0.9, 0.7, 100), ("cfg", 15.0, 0.99, 0.95, 0.2, 100),
        ("decay", 15.0, 0.94, 0.99, 0.9, 100), ("interval", 15.0, 0.99, 0.9, 0.3, 100),
    ])  # fmt: skip
    assert evidence(bad, "ar") == {
        "adherence_s3": False,  # 0.93 < 0.95
        "recall_falls": False,  # rises by 0.2 from s = 1 to s = 3
        "precision_peaks": False,  # highest at s = 15
        "mitigation_wins": False,  # decay's adherence 0.94 < 0.95
        "interval_cheaper": False,  # as costly as CFG
        "gft_half_cost": None,  # no guidance-free rows
    }
    assert set(evidence(good, "diffusion").values()) == {None}  # no rows: nothing decided
    barely = rows_of("d", [("cfg", 1.0, 0.96, 0.9, 0.9, 50), ("cfg", 3.0, 0.97, 0.9, 0.8, 100)])
    assert evidence(barely, "d")["adherence_s3"] is False  # miss rate 3% is not half of 4%


def test_stand_in_run_shows_the_evidence(run):
    report = run[2]
    ev = report["meta"]["evidence"]["mixture"]
    assert ev == evidence(report["rows"], "mixture")
    assert ev["interval_cheaper"] and ev["recall_falls"]
    assert "## Evidence" in (run[0] / "report.md").read_text()


def test_failure_mode_reads_the_numbers():
    real = {"saturation": 0.5}
    fine = {"adherence": 0.99, "precision": 0.9, "recall": 0.6, "saturation": 0.55, "mean_abs": 0.8}
    assert failure_mode(fine, real) == "—"
    burnt = {"adherence": 0.7, "precision": 0.4, "recall": 0.1, "saturation": 0.7, "mean_abs": 1.2}
    assert failure_mode(burnt, real) == (
        "off-class (70% recognised); implausible shapes (precision 0.40); low diversity (recall 0.10); "
        "saturated (70% of pixels at ±1, real digits 50%); pushed past the data range (mean |x| 1.20 before clipping)"
    )


def test_rows_carry_intervals_and_the_report_has_the_leaderboard(run):
    out, _, report = run
    for row in report["rows"]:
        for metric in ("adherence", "precision", "recall"):
            lo, hi = row["ci"][metric]
            assert lo <= row[metric] + 1e-9 and row[metric] <= hi + 1e-9
    comparison = report["meta"]["runs"]["mixture"]["comparison"]
    assert set(comparison["fronts"]) == {"adherence-recall", "precision-recall"}
    assert set(comparison["methods"]) == {"rescale", "interval"}
    assert len(comparison["leaderboard"]) == sum(r["scale"] >= 1 for r in report["rows"])
    text = (out / "report.md").read_text()
    assert "## Leaderboard" in text and "### mixture" in text
