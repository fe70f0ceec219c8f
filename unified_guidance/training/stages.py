"""Stage progress of the demo's parts: steps done / total and an ETA, as a live bar or as plain lines.

A *stage* is one counted piece of work of a part: ``"diffusion: training"`` (optimiser steps),
``"diffusion: sampling"`` (sweep items), ``"diffusion: metrics"``, ``"text: settings"``. The code
doing the work reports ``(stage, done, total)`` through :class:`Stage` (or :func:`track` for a
loop) to the process's *sink*, installed with :func:`reporting`; where no sink is installed
nothing is reported here (a library call keeps its own tqdm bar). The sinks:

* :class:`LineSink`: one plain line per stage when it starts, then at most one every ``every``
  seconds, and one when it ends — what a log or CI gets (no carriage returns);
* :class:`BarSink`: a live tqdm bar per stage — a terminal only;
* a worker process's sink (:mod:`unified_guidance.demo.jobs`) sends the updates to its parent,
  which shows them with its own sink.

This module imports no Lightning: a worker that only samples text starts without it.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, Any, Protocol, TypeVar

T = TypeVar("T")

LINE_SECONDS = 20.0
"""Seconds between two plain lines of one stage (its first and last lines come anyway)."""


@dataclass(frozen=True)
class StageUpdate:
    """``done`` of ``total`` units of stage ``name`` (``total`` ``None``: unknown), ``elapsed`` seconds
    after it started at ``initial`` done (a resumed training starts at its checkpoint's step); ``part``:
    the worker's part it came from (``""`` in the process doing the work)."""

    name: str
    done: int
    total: int | None
    elapsed: float
    initial: int = 0
    part: str = ""

    @property
    def key(self) -> tuple[str, str]:
        return self.part, self.name

    @property
    def finished(self) -> bool:
        return self.total is not None and self.done >= self.total

    def eta(self) -> float | None:
        """Seconds left at the stage's rate so far; ``None`` before the first unit or without a total."""
        if self.total is None or self.done <= self.initial or self.elapsed <= 0:
            return None
        return (self.total - self.done) * self.elapsed / (self.done - self.initial)


class Sink(Protocol):
    """Where a process's stage updates go."""

    def update(self, update: StageUpdate) -> None: ...

    def write(self, text: str) -> None:
        """A line of its own (a part started or ended) that must not break a bar."""

    def close(self) -> None: ...


def clock(seconds: float) -> str:
    """``seconds`` as ``m:ss`` or ``h:mm:ss``."""
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def stage_line(update: StageUpdate) -> str:
    """``"diffusion: training 350/1500 (23%), 1:12 elapsed, ETA 4:03"``; at the end ``"… 1500/1500 (100%) in 5:15"``."""
    if update.total is None:
        return f"{update.name} {update.done}, {clock(update.elapsed)} elapsed"
    share = f"{update.name} {update.done}/{update.total} ({math.floor(100 * update.done / max(update.total, 1))}%)"
    if update.finished:
        return f"{share} in {clock(update.elapsed)}"
    eta = update.eta()
    return f"{share}, {clock(update.elapsed)} elapsed, ETA {'?' if eta is None else clock(eta)}"


class LineSink:
    """Plain lines on ``stream`` (default: stderr): a stage's first update, then one every ``every``
    seconds at most, and its last; nothing else of a stage is printed."""

    def __init__(self, stream: IO[str] | None = None, every: float = LINE_SECONDS) -> None:
        self.stream, self.every = stream, every
        self._last: dict[tuple[str, str], float] = {}

    def update(self, update: StageUpdate) -> None:
        now = time.monotonic()
        last = self._last.get(update.key)
        if update.finished:
            self._last.pop(update.key, None)
        elif last is not None and now - last < self.every:
            return
        else:
            self._last[update.key] = now
        self.write(stage_line(update))

    def write(self, text: str) -> None:
        print(text, file=self.stream or sys.stderr, flush=True)

    def close(self) -> None:
        self._last.clear()


class BarSink:
    """A live tqdm bar per running stage on stderr (a terminal's); parts side by side get a row each."""

    def __init__(self) -> None:
        self._bars: dict[tuple[str, str], tuple[Any, int]] = {}

    def update(self, update: StageUpdate) -> None:
        from tqdm.auto import tqdm

        if update.key not in self._bars:
            rows = {row for _, row in self._bars.values()}
            row = next(i for i in range(len(rows) + 1) if i not in rows)
            bar = tqdm(desc=update.name, total=update.total, initial=update.initial, position=row, leave=True)
            bar.start_t -= update.elapsed  # a worker's stage started before its first message came
            self._bars[update.key] = (bar, row)
        bar = self._bars[update.key][0]
        bar.update(update.done - bar.n)  # tqdm redraws at most every 0.1 s
        if update.finished:
            self._bars.pop(update.key)[0].close()

    def write(self, text: str) -> None:
        from tqdm.auto import tqdm

        tqdm.write(text, file=sys.stderr)

    def close(self) -> None:
        for bar, _ in self._bars.values():
            bar.close()
        self._bars.clear()


def console_sink(bars: bool = True) -> Sink:
    """A live bar where stderr is a terminal and ``bars`` is set; plain lines otherwise."""
    terminal = sys.stderr is not None and sys.stderr.isatty()
    return BarSink() if bars and terminal else LineSink()


_sink: Sink | None = None


def current() -> Sink | None:
    """This process's sink, ``None`` outside :func:`reporting`."""
    return _sink


@contextmanager
def reporting(sink: Sink) -> Iterator[Sink]:
    """Send the stage updates of the block to ``sink`` (closed at the end)."""
    global _sink
    previous, _sink = _sink, sink
    try:
        yield sink
    finally:
        _sink = previous
        sink.close()


def note(text: str) -> None:
    """A line of its own for the user: to the current sink (it does not break a bar), else to stderr."""
    sink = current()
    if sink is not None:
        sink.write(text)
    else:
        print(text, file=sys.stderr, flush=True)


class Stage:
    """One stage reported to the current sink: ``Stage("flow: sampling", 40).update(done)``."""

    def __init__(self, name: str, total: int | None, *, initial: int = 0) -> None:
        self.name, self.total, self.initial = name, total, initial
        self.start = time.perf_counter()
        self.update(initial)

    def update(self, done: int) -> None:
        sink = current()
        if sink is not None:
            sink.update(StageUpdate(self.name, done, self.total, time.perf_counter() - self.start, self.initial))


def track(items: Sequence[T] | Iterable[T], name: str, *, progress: bool = True) -> Iterator[T]:
    """Iterate ``items`` reporting stage ``name`` per item: to the current sink, else as a tqdm bar;
    ``progress=False``: silently."""
    if not progress:
        yield from items
        return
    if current() is None:
        from tqdm.auto import tqdm

        yield from tqdm(items, desc=name)
        return
    stage = Stage(name, len(items) if isinstance(items, Sequence) else None)
    for i, item in enumerate(items, 1):
        yield item
        stage.update(i)
