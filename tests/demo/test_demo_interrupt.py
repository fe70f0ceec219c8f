"""Ctrl-C during a paradigm's training keeps its last periodic checkpoint, says so, and a rerun resumes from it.

The interrupt is a real SIGINT sent to a child process that trains the demo's flow model.
"""

import os
import signal
import subprocess
import sys
import textwrap
import time

import torch

from unified_guidance.demo.runners import get_runner
from unified_guidance.training.data import DigitsDataModule
from unified_guidance.training.fit import fit
from unified_guidance.training.resume import TrainingInterrupted, resumable

# A terminal's foreground job takes Ctrl-C; a shell's background job (``make test &``) would
# start these children with SIGINT ignored, so they take it back as the terminal gives it.
INTERACTIVE = "import signal; signal.signal(signal.SIGINT, signal.default_int_handler)\n"

CHILD = INTERACTIVE + textwrap.dedent(
    """
    import sys
    from pathlib import Path
    import torch
    from unified_guidance.demo.runners import get_runner
    from unified_guidance.training.data import DigitsDataModule
    from unified_guidance.training.fit import fit
    from unified_guidance.training.resume import TrainingInterrupted, resumable

    torch.set_num_threads(1)
    path, max_steps = Path(sys.argv[1]), int(sys.argv[2])
    runner = get_runner("flow")
    config = runner.config(True) | {"width": 8, "max_steps": max_steps, "batch_size": 16, "sample_steps": 2}
    module = runner.make(config)
    steps = []
    step = module.training_step
    module.training_step = lambda *a, **k: steps.append(1) or step(*a, **k)
    try:
        with resumable(path, every_n_steps=5):
            done = fit(module, DigitsDataModule(batch_size=16), max_steps=max_steps, seed=0, progress=False)
    except TrainingInterrupted as err:
        print(err, file=sys.stderr)
        sys.exit(130)
    print(f"finished at step {done} after {len(steps)} steps in this run")
    """
)


def child(path, max_steps):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-c", CHILD, str(path), str(max_steps)]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def test_sigint_keeps_the_last_checkpoint_and_a_rerun_resumes_from_it(tmp_path):
    path = tmp_path / "flow.resume.ckpt"
    first = child(path, 100_000)
    deadline = time.monotonic() + 120
    while not path.exists() and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert path.exists(), first.communicate()[1]
    first.send_signal(signal.SIGINT)
    _, err = first.communicate(timeout=120)
    assert first.returncode == 130, err
    kept = torch.load(path, map_location="cpu", weights_only=False)["global_step"]
    assert kept > 0 and kept % 5 == 0
    assert f"kept the checkpoint of step {kept} at {path}: run the same command again to resume from it" in err
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]  # no half-written checkpoint

    # The rerun (here in this process) starts from the kept step: 3 more steps reach kept + 3.
    runner = get_runner("flow")
    config = runner.config(True) | {"width": 8, "max_steps": kept + 3, "batch_size": 16, "sample_steps": 2}
    module = runner.make(config)
    steps = []
    step = module.training_step
    module.training_step = lambda *a, **k: steps.append(1) or step(*a, **k)
    with resumable(path, every_n_steps=5):
        done = fit(module, DigitsDataModule(batch_size=16), max_steps=kept + 3, seed=0, progress=False)
    assert (done, len(steps)) == (kept + 3, 3)


def test_the_console_script_says_what_ctrl_c_kept(tmp_path, monkeypatch, capsys):
    import unified_guidance.demo.run as run
    from unified_guidance.demo.cli import main

    def stop(opts):
        raise TrainingInterrupted(
            f"training interrupted at step 7; kept the checkpoint of step 5 at {tmp_path}", 7, tmp_path, 5
        )

    monkeypatch.setattr(run, "run_demo", stop)
    assert main(["demo", "--out", str(tmp_path)]) == 130
    assert (
        capsys.readouterr().err
        == f"unified-guidance demo: training interrupted at step 7; kept the checkpoint of step 5 at {tmp_path}\n"
    )


def test_the_console_script_exits_143_when_sigterm_stopped_the_training(tmp_path, monkeypatch, capsys):
    import unified_guidance.demo.run as run
    from unified_guidance.demo.cli import main

    message = f"training stopped by SIGTERM at step 7; kept the checkpoint of step 7 at {tmp_path}"

    def stop(opts):
        raise TrainingInterrupted(message, 7, tmp_path, 7, exit_status=143)

    monkeypatch.setattr(run, "run_demo", stop)
    assert main(["demo", "--out", str(tmp_path)]) == 143
    assert capsys.readouterr().err == f"unified-guidance demo: {message}\n"
