"""benchmarks/gpu.py: refuses cleanly without CUDA, and its whole path runs (``--smoke``, tiny CPU models)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu.py"


def _run(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}  # no GPU, even on a machine that has one
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, env=env, timeout=600)


def test_without_cuda_it_exits_with_one_clear_line():
    done = _run()
    assert done.returncode == 2
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("benchmarks/gpu.py: no CUDA device (torch.cuda.is_available() is False)")


def test_smoke_run_fills_every_row_of_the_table(tmp_path):
    out = tmp_path / "gpu.md"
    done = _run("--smoke", "--batch-sizes", "1", "--out", str(out))
    assert done.returncode == 0, done.stderr[-2000:]
    text = out.read_text()
    assert "FAILED" not in text
    rows = [line for line in text.splitlines() if line.startswith("| ") and "---" not in line][1:]
    ar = [r for r in rows if r.startswith("| AR ")]
    assert len(ar) == 2 * 4  # two models × (unguided, built-in, ours, ours with F.linear) at batch 1
    for paradigm in ("diffusion", "flow"):
        steps = [r for r in rows if r.startswith(f"| {paradigm}: ")]
        assert len(steps) == 2 * 3  # eager and compiled × (fwd(2B), guided, guided without checks)
    assert all(" ms |" in r for r in rows)
