"""A real SIGTERM sent to a process running a recipe's fit: it exits with status 143 (a script no
longer sees 0, a finished training), says what it kept, and the last.ckpt it saved at the step it
reached resumes to the uninterrupted run exactly.

The recipe is the autoregressive one, bounded by ``max_steps`` as shipped, with two batches an epoch.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import torch
from recipe_runs import QUIET, RECIPES, RECIPES_DIR, assert_resumes_exactly

TWO = ["--trainer.max_epochs=-1", "--trainer.limit_train_batches=2", "--trainer.limit_val_batches=0"]


def test_sigterm_mid_fit_exits_143_keeps_the_step_reached_and_resumes_exactly(tmp_path):
    _, yaml, tiny = RECIPES["autoregressive"]
    run = tmp_path / "first"
    command = [
        sys.executable, "-m", "unified_guidance.recipes.train_autoregressive", "fit",
        "--config", str(RECIPES_DIR / yaml), f"--trainer.default_root_dir={run}",
        *QUIET, *tiny, *TWO, "--trainer.max_steps=1000000",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    last = run / "checkpoints" / "last.ckpt"
    try:
        deadline = time.monotonic() + 180
        while not last.exists() and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)  # the shipped 5-epoch checkpoint: the fit is at step 10 or beyond
        assert last.exists() and child.poll() is None, "the fit did not reach its first checkpoint"
        child.send_signal(signal.SIGTERM)
        _, err = child.communicate(timeout=180)
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate()
    assert child.returncode == 143, err
    step = torch.load(last, weights_only=False)["global_step"]
    assert step >= 10
    assert f"fit stopped by SIGTERM at step {step}; kept {last}: resume with fit --ckpt_path {last}" in err
    assert not list(last.parent.glob("*.tmp"))
    assert_resumes_exactly("autoregressive", tmp_path, last, *TWO, f"--trainer.max_steps={step + 2}", steps=step + 2)
