"""The demo's parts in worker processes: same report as in one process, errors and Ctrl-C come back."""

import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from demo_support import NearestMean, fail_when, mark_then_sleep

from unified_guidance.demo.jobs import Job, run_jobs
from unified_guidance.demo.run import DemoOptions, run_demo


def options(out, jobs):
    return DemoOptions(
        out=out, quick=True, paradigms=("mixture",), samples_per_class=6, scales=(1.0, 3.0), high_scales=(15.0,),
        methods=("cfg", "interval"), bayes_scales=(1.0, 8.0), bayes_samples=40, bayes_steps=6, progress=False,
        jobs=jobs,
    )  # fmt: skip


def test_two_workers_write_the_report_one_process_writes(tmp_path):
    evaluator = NearestMean()
    alone = run_demo(options(tmp_path / "one", 1), evaluator=evaluator)
    side = run_demo(options(tmp_path / "two", 2), evaluator=evaluator)
    assert side["meta"]["jobs"]["workers"] == 2 and side["meta"]["jobs"]["threads"] >= 1
    assert set(side["meta"]["jobs"]["seconds"]) == set(alone["meta"]["jobs"]["seconds"]) == {"mixture", "bayes_view"}
    assert len(side["rows"]) == len(alone["rows"]) == 3  # cfg at 1 and 3, interval at 15
    for a, b in zip(alone["rows"], side["rows"], strict=True):
        assert (a["paradigm"], a["method"], a["scale"]) == (b["paradigm"], b["method"], b["scale"])
        assert a["forward_rows"] == b["forward_rows"]
        for key in ("adherence", "precision", "recall", "saturation"):  # torch threads differ: rounding only
            assert math.isclose(a[key], b[key], rel_tol=1e-6, abs_tol=1e-9), key
    assert (tmp_path / "two/figures/bayes_view.png").stat().st_size > 0
    assert json.loads((tmp_path / "two/report.json").read_text())["meta"]["jobs"]["workers"] == 2


def test_a_failing_part_raises_here_with_its_traceback_and_stops_the_others(tmp_path):
    flag = str(tmp_path / "slow")
    jobs = [Job("slow", mark_then_sleep, (flag, 300.0)), Job("bad", fail_when, (flag, "no such digit"))]
    with pytest.raises(ValueError, match="no such digit") as caught:
        run_jobs(jobs, workers=2, threads=1, progress=False)
    assert any("in the worker process" in note and "fail_when" in note for note in caught.value.__notes__)
    assert not Path(flag + ".done").exists()  # stopped, not waited for


def test_bad_worker_counts_are_refused_before_any_work(tmp_path):
    with pytest.raises(ValueError, match=r"^jobs: expected an integer ≥ 1, got 0$"):
        run_demo(options(tmp_path / "out", 0), evaluator=NearestMean())
    assert not (tmp_path / "out").exists()
    with pytest.raises(ValueError, match=r"^threads: expected an integer ≥ 1, got 0$"):
        run_jobs([], workers=2, threads=0)


def _start(script, *argv):
    path = os.pathsep.join([str(Path(__file__).parent), *sys.path])
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": path}
    command = [sys.executable, "-c", script, *map(str, argv)]
    return subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=env, start_new_session=True)


def _gone(pid, seconds=60.0):
    """Whether process ``pid`` has exited (or is a zombie) within ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            return True
        if state in ("Z", "X"):
            return True
        time.sleep(0.1)
    return False


# Ctrl-C as a terminal's foreground job takes it (a shell's ``cmd &`` would start the parent
# with SIGINT ignored; its spawned workers then take it back from the parent's handler).
PARENT = "import signal; signal.signal(signal.SIGINT, signal.default_int_handler)\n" + textwrap.dedent(
    """
    import sys
    from unified_guidance.demo.jobs import Job, run_jobs
    from unified_guidance.training.resume import TrainingInterrupted
    from demo_support import mark_then_sleep, train_flow

    if __name__ == "__main__":
        ckpt, flag = sys.argv[1], sys.argv[2]
        jobs = [Job("flow", train_flow, (ckpt, 100_000)), Job("other", mark_then_sleep, (flag, 300.0))]
        try:
            run_jobs(jobs, workers=2, threads=1, progress=False)
        except TrainingInterrupted as err:
            print(f"kept step {err.kept_step}: {err}", file=sys.stderr)
            sys.exit(130)
    """
)


def test_ctrl_c_stops_every_part_and_says_what_the_training_kept(tmp_path):
    ckpt, flag = tmp_path / "flow.resume.ckpt", tmp_path / "other"
    env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), *sys.path]),
    }
    command = [sys.executable, "-c", PARENT, str(ckpt), str(flag)]
    parent = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=env, start_new_session=True)
    deadline = time.monotonic() + 180
    while not (ckpt.exists() and flag.exists()) and parent.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ckpt.exists() and flag.exists(), parent.communicate()[1]
    os.killpg(parent.pid, signal.SIGINT)  # what the terminal's Ctrl-C does: the whole process group
    _, err = parent.communicate(timeout=120)
    assert parent.returncode == 130, err
    assert "kept the checkpoint of step" in err and f"at {ckpt}: run the same command again to resume" in err
    assert not Path(str(flag) + ".done").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]  # no half-written checkpoint


SLEEPERS = textwrap.dedent(
    """
    import sys
    from unified_guidance.demo.jobs import Job, run_jobs
    from demo_support import mark_then_sleep

    jobs = [Job(name, mark_then_sleep, (f"{sys.argv[1]}-{name}", 300.0)) for name in ("a", "b")]
    run_jobs(jobs, workers=2, threads=1, progress=False)
    """
)


@pytest.mark.skipif(sys.platform != "linux", reason="the parent-death signal is Linux's (prctl)")
@pytest.mark.parametrize("sigint", ["handled", "ignored"])  # ignored: started by a shell's ``cmd &``
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL])
def test_the_workers_stop_when_their_parent_is_stopped_or_killed(tmp_path, signum, sigint):
    flags = [tmp_path / "part-a", tmp_path / "part-b"]
    handler = "signal.default_int_handler" if sigint == "handled" else "signal.SIG_IGN"
    parent = _start(f"import signal; signal.signal(signal.SIGINT, {handler})\n" + SLEEPERS, tmp_path / "part")
    deadline = time.monotonic() + 180
    while not all(f.exists() and f.read_text() for f in flags) and time.monotonic() < deadline:
        time.sleep(0.05)
    pids = [int(f.read_text()) for f in flags]
    parent.send_signal(signum)  # the parent alone, as a job scheduler or `kill PID` sends it
    _, err = parent.communicate(timeout=120)
    assert parent.returncode != 0, err
    assert all(_gone(pid) for pid in pids), err  # SIGTERM passed on; after SIGKILL the kernel's SIGINT


@pytest.mark.parametrize(
    ("argv", "expected"),
    [([], "threads"), (["--jobs", "3"], 3), (["--devices", "2"], 1), (["--strategy", "ddp_fork"], 1)],
)
def test_the_console_script_chooses_the_workers(tmp_path, monkeypatch, argv, expected):
    import torch

    import unified_guidance.demo.run as run
    from unified_guidance.demo.cli import main

    seen = []
    monkeypatch.setattr(run, "run_demo", lambda opts: seen.append(opts.jobs) or {"rows": []})
    assert main(["demo", "--out", str(tmp_path), *argv]) == 0
    assert seen == [min(4, torch.get_num_threads()) if expected == "threads" else expected]


def test_the_console_script_refuses_zero_workers(capsys):
    from unified_guidance.demo.cli import main

    with pytest.raises(SystemExit) as done:
        main(["demo", "--jobs", "0"])
    assert done.value.code == 2
    assert "--jobs: expected a positive integer, got '0'" in capsys.readouterr().err
