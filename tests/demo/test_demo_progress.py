"""What the console shows while the demo runs: a stage line per part with done / total and an ETA,
in one process and from worker processes, plain lines (no carriage returns) when stderr is not a
terminal; Lightning's LeafSpec deprecation and transformers' loading bars filtered out."""

import importlib
import io
import os
import re
import warnings

import pytest
import torch
from demo_support import NearestMean, train_flow_shown
from test_demo_jobs import options

from tests.autoregressive.ar_models import save_tiny_chat_model
from unified_guidance.autoregressive import load_causal_lm
from unified_guidance.compat.transformers import GGUF_LOADER, quiet_loading
from unified_guidance.demo.jobs import Job, run_jobs
from unified_guidance.demo.run import run_demo
from unified_guidance.training.compat import quiet_pytree_deprecation
from unified_guidance.training.stages import BarSink, LineSink, StageUpdate, console_sink, stage_line

LEAFSPEC = "isinstance(treespec, LeafSpec)"


@pytest.mark.parametrize("jobs", [1, 2])
def test_a_demo_run_prints_stage_lines_in_one_process_and_from_workers(tmp_path, capfd, jobs):
    run_demo(options(tmp_path / "out", jobs), evaluator=NearestMean())
    err = capfd.readouterr().err
    assert "\r" not in err  # plain lines, not a bar redrawn in place
    assert "mixture: sampling 0/30 (0%)" in err  # 3 settings × 10 classes, one item each
    assert re.search(r"^mixture: sampling 30/30 \(100%\) in \d+:\d\d$", err, re.M), err
    assert re.search(r"^mixture: metrics 3/3 \(100%\) in \d+:\d\d$", err, re.M), err
    if jobs > 1:  # the parent says when each worker's part starts and ends
        assert "mixture: started (" in err and re.search(r"^mixture: done in \d+ s$", err, re.M), err
    assert LEAFSPEC not in err


@pytest.mark.parametrize("workers", [1, 2])
def test_a_training_part_reports_its_steps_with_an_eta_in_every_mode(capfd, workers):
    jobs = [Job("flow", train_flow_shown, (12,)), Job("other", train_flow_shown, (3,))]
    results, _ = run_jobs(jobs, workers=workers, threads=1)
    assert results == [12, 3]
    err = capfd.readouterr().err
    assert "\r" not in err and LEAFSPEC not in err and "Epoch" not in err  # no Lightning bar, no warning
    assert "flow: training 0/12 (0%), 0:00 elapsed, ETA ?" in err
    assert re.search(r"^flow: training 12/12 \(100%\) in \d+:\d\d$", err, re.M), err
    assert re.search(r"^flow: training 3/3 \(100%\) in \d+:\d\d$", err, re.M), err


def test_stage_lines_come_at_a_readable_rate_not_per_step():
    out = io.StringIO()
    sink = LineSink(out, every=20.0)
    for done in range(0, 501):  # 500 steps in well under 20 s
        sink.update(StageUpdate("diffusion: training", done, 500, elapsed=done / 100))
    lines = out.getvalue().splitlines()
    assert lines == [
        "diffusion: training 0/500 (0%), 0:00 elapsed, ETA ?",
        "diffusion: training 500/500 (100%) in 0:05",
    ]


def test_a_stage_line_says_done_total_elapsed_and_eta():
    update = StageUpdate("flow: sampling", 25, 100, elapsed=75.0)
    assert update.eta() == 225.0
    assert stage_line(update) == "flow: sampling 25/100 (25%), 1:15 elapsed, ETA 3:45"
    resumed = StageUpdate("flow: training", 1500, 4000, elapsed=1250.0, initial=1000)  # 500 steps since the resume
    assert stage_line(resumed) == "flow: training 1500/4000 (37%), 20:50 elapsed, ETA 1:44:10"  # 2,500 × 2.5 s
    assert stage_line(StageUpdate("text: settings", 4, None, elapsed=3.0)) == "text: settings 4, 0:03 elapsed"


def test_live_bars_only_on_a_terminal_and_never_with_no_progress(monkeypatch):
    main, other = os.openpty()
    with os.fdopen(other, "w") as terminal:
        monkeypatch.setattr("sys.stderr", terminal)
        assert isinstance(console_sink(bars=True), BarSink)
        assert isinstance(console_sink(bars=False), LineSink)  # --no-progress: the stage lines stay
    os.close(main)
    monkeypatch.setattr("sys.stderr", io.StringIO())  # a log
    assert isinstance(console_sink(bars=True), LineSink)


def test_the_leafspec_deprecation_of_lightning_is_filtered_and_nothing_else():
    from lightning.pytorch.utilities._pytree import _tree_flatten

    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        _tree_flatten(torch.zeros(2))  # the real emitter: Lightning's pytree helper
        assert any(LEAFSPEC in str(w.message) for w in seen)  # it does warn (else this test shows nothing)
        seen.clear()
        with quiet_pytree_deprecation():
            _tree_flatten(torch.zeros(2))
            warnings.warn("the demo's own warning", UserWarning, stacklevel=1)
    assert [str(w.message) for w in seen] == ["the demo's own warning"]


def test_transformers_loading_bars_are_hidden_and_given_back(tmp_path, capfd):
    saved = save_tiny_chat_model(tmp_path / "chat")
    gguf = importlib.import_module(GGUF_LOADER)
    plain = gguf.tqdm
    load_causal_lm(saved, local_files_only=True)
    shown = "Loading weights" in capfd.readouterr().err  # transformers 5 draws this bar; 4.57 draws none
    with quiet_loading():
        load_causal_lm(saved, local_files_only=True)
        list(gguf.tqdm(range(3), desc="Converting and de-quantizing GGUF tensors..."))  # the converter's name
    assert capfd.readouterr().err == ""
    assert gguf.tqdm is plain
    list(gguf.tqdm(range(3), desc="Converting and de-quantizing GGUF tensors..."))
    assert "de-quantizing GGUF" in capfd.readouterr().err  # given back after the block
    load_causal_lm(saved, local_files_only=True)
    assert ("Loading weights" in capfd.readouterr().err) == shown  # the load's own bar is back too


def test_the_help_says_what_no_progress_keeps():
    from unified_guidance.demo.cli import build_parser

    demo = build_parser()._subparsers._group_actions[0].choices["demo"].format_help()
    flat = " ".join(demo.split())
    assert "--no-progress no live progress bars: each part's stages (steps or items done / total, ETA) as plain" in flat
    assert "as always when stderr is not a terminal" in flat
