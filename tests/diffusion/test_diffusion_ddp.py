"""Multi-process training with Lightning's ``ddp`` strategy: 2 CPU processes, gloo backend."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]


def test_ddp_on_two_cpu_processes_with_gloo(tmp_path):
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", "OMP_NUM_THREADS": "1"}
    worker = Path(__file__).with_name("ddp_worker.py")
    done = subprocess.run(
        [sys.executable, str(worker), str(tmp_path)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=240
    )
    assert done.returncode == 0, done.stderr[-3000:]
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1))
    assert (r0["backend"], r0["world_size"], r0["rank"], r1["rank"]) == ("gloo", 2, 0, 1)
    assert r0["batches"].shape == r1["batches"].shape == (2, 32, 1, 8, 8)
    # the distributed sampler gives each rank its own samples ...
    flat0, flat1 = r0["batches"].flatten(0, 1).flatten(1), r1["batches"].flatten(0, 1).flatten(1)
    assert not bool((torch.cdist(flat0, flat1) == 0).any())
    # ... each rank draws its own times, noise and dropout ...
    assert not torch.equal(r0["first_draw"], r1["first_draw"])
    # ... and gradient all-reduce keeps the replicas (and their EMA) identical
    torch.testing.assert_close(r0["weights"], r1["weights"], rtol=0, atol=0)
    torch.testing.assert_close(r0["ema"], r1["ema"], rtol=0, atol=0)
