"""The recipes run outside the checkout: ``python -m unified_guidance.recipes.<recipe>`` and
``python recipes/<recipe>.py`` from a foreign working directory, their YAML found in the package.

The stand-in for an installed package: a directory holding only a link to ``unified_guidance``
on ``PYTHONPATH`` (so the checkout's top-level ``recipes`` is *not* importable, as in a user's
environment); ``make test-wheel`` runs the console scripts from the installed wheel itself.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
TINY = [
    "--trainer.max_steps=1", "--trainer.limit_train_batches=1", "--trainer.limit_val_batches=0",
    "--trainer.logger=false", "--trainer.enable_progress_bar=false", "--model.width=8",
]  # fmt: skip


def run(tmp_path: Path, *command: str) -> subprocess.CompletedProcess:
    site = tmp_path / "site"
    site.mkdir(exist_ok=True)
    if not (site / "unified_guidance").exists():
        (site / "unified_guidance").symlink_to(ROOT / "unified_guidance", target_is_directory=True)
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(site), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, *command], cwd=work, env=env, capture_output=True, text=True, timeout=300)


def test_module_path_fits_on_the_packaged_yaml_from_a_foreign_directory(tmp_path):
    done = run(tmp_path, "-m", "unified_guidance.recipes.train_flow", "fit", *TINY)
    assert done.returncode == 0, done.stderr[-3000:]
    # The YAML's default_root_dir (runs/flow_digits), relative to the working directory: it was read.
    last = tmp_path / "work" / "runs" / "flow_digits" / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=False)["global_step"] == 1


@pytest.mark.parametrize("recipe", ["train_diffusion", "train_flow", "train_autoregressive"])
def test_the_checkout_script_runs_as_a_file(tmp_path, recipe):
    done = run(tmp_path, str(ROOT / "recipes" / f"{recipe}.py"), "fit", "--help")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "--data CONFIG | CLASS_PATH_OR_NAME | .INIT_ARG_NAME VALUE" in done.stdout
    assert "DigitsDataModule" in done.stdout  # the packaged YAML's default
