"""Timing helpers for the benchmarks: side-by-side, interleaved, median of repeats."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch

CLOCKS: dict[str, Callable[[], float]] = {"wall": time.perf_counter, "cpu": time.process_time}
"""``cpu`` is this process's CPU time: with one thread, other processes on a shared machine barely
disturb it (CPU only: it does not see time spent waiting for an accelerator)."""


def device_clock(device: torch.device) -> Callable[[], float]:
    """Wall time that waits for ``device`` first: on a GPU, kernels run asynchronously, so a
    candidate's time is only its own once the queue before and after it is drained."""

    def now() -> float:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter()

    return now


def interleaved_medians(
    fns: dict[str, Callable[[], object]],
    repeats: int = 30,
    warmup: int = 3,
    clock: str | Callable[[], float] = "wall",
) -> dict[str, float]:
    """Median time in seconds of each function, measured round-robin so that
    machine noise hits every candidate alike. ``clock``: a name in :data:`CLOCKS` or a callable."""
    if not callable(clock) and clock not in CLOCKS:
        raise ValueError(f"clock: expected one of {', '.join(CLOCKS)}, got {clock!r}")
    now = clock if callable(clock) else CLOCKS[clock]
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = now()
            fn()
            times[name].append(now() - start)
    return {name: statistics.median(ts) for name, ts in times.items()}


def machine() -> str:
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU"
    return f"torch {torch.__version__}, {torch.get_num_threads()} threads, {device}"
