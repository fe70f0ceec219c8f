"""Timing helpers for the benchmarks: side-by-side, interleaved, median of repeats."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch


def interleaved_medians(fns: dict[str, Callable[[], object]], repeats: int = 30, warmup: int = 3) -> dict[str, float]:
    """Median wall time in seconds of each function, measured round-robin so that
    machine noise hits every candidate alike."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(ts) for name, ts in times.items()}


def machine() -> str:
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU"
    return f"torch {torch.__version__}, {torch.get_num_threads()} threads, {device}"
