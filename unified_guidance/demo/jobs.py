"""The demo's independent parts side by side: one spawned process per part, ``workers`` at a time.

The paradigms, the Bayes-view figure and the text section share nothing but read-only inputs
(the evaluator, the reference features) and the output directory, where each writes its own
files. :func:`run_jobs` runs them in separate processes, at most ``workers`` at once, each
with ``threads`` torch threads, the costliest first (so the last to start are the short
ones), and returns their results in the order given. The demo's models are small: on two
cores two 1-thread processes do more work than one 2-thread process (see
``docs/demo.md``).

Each part's stages (training steps, sweep items, metrics, text settings: :mod:`~unified_guidance.training.stages`)
come back to this process over the part's pipe as they go, at most one update a second per stage, and
are shown here: a live bar per part on a terminal, else a plain line per stage now and then.

A part that fails stops the others the way Ctrl-C does (trainings keep their resumable
checkpoint), and its error is raised here with the worker's traceback as a note. Ctrl-C
in the terminal reaches every process of the group: each part stops as it would alone,
and :func:`run_jobs` raises the first :class:`~unified_guidance.training.resume.TrainingInterrupted`
it got back (it says which checkpoint was kept), else ``KeyboardInterrupt``.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, replace
from functools import partial
from multiprocessing.connection import Connection, wait
from typing import TYPE_CHECKING, Any

from ..core.numbers import check_int
from ..training.stages import Sink, StageUpdate, console_sink, reporting

if TYPE_CHECKING:
    from ..training.resume import TrainingInterrupted

GRACE_SECONDS = 60.0
"""How long a stopped part may take to wind down (Lightning's shutdown) before it is killed."""


@dataclass(frozen=True)
class Job:
    """One part: ``fn(*args)`` (a module-level function, its arguments picklable); ``cost`` orders the start."""

    name: str
    fn: Callable[..., Any]
    args: tuple[Any, ...] = ()
    cost: float = 1.0


PROGRESS_SECONDS = 1.0
"""Seconds between two progress messages of one stage from a worker (its first and last go at once)."""


class PipeSink:
    """A worker's stage sink: the updates go to the parent over the part's pipe, as ``("progress", update)``."""

    def __init__(self, conn: Connection, every: float = PROGRESS_SECONDS) -> None:
        self.conn, self.every = conn, every
        self._last: dict[tuple[str, str], float] = {}

    def update(self, update: StageUpdate) -> None:
        now = time.monotonic()
        if not update.finished and now - self._last.get(update.key, -math.inf) < self.every:
            return
        self._last[update.key] = now
        try:
            self.conn.send(("progress", update))
        except (BrokenPipeError, ConnectionResetError):  # the parent is gone: the part stops on its signal
            pass

    def write(self, text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    def close(self) -> None:
        self._last.clear()


def _child(conn: Connection, threads: int, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
    import torch

    _stop_with_parent()
    torch.set_num_threads(threads)
    start = time.perf_counter()
    try:
        with reporting(PipeSink(conn)):
            message: tuple[str, Any, Any] = ("ok", fn(*args), time.perf_counter() - start)
    except BaseException as err:  # Ctrl-C and SystemExit too: the parent decides what they mean
        message = ("error", err, "".join(traceback.format_exception(err)))
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the part is over: a second Ctrl-C must not lose its report
    try:
        try:
            conn.send(message)
        except (BrokenPipeError, ConnectionResetError):
            raise
        except Exception as err:  # a result or an error that does not pickle: say so, with the text
            ok = message[0] == "ok"
            what = "result" if ok else f"error ({type(message[1]).__name__}: {message[1]})"
            reason = RuntimeError(f"the part's {what} could not be sent back: {err}")
            conn.send(("error", reason, "" if ok else message[2]))
    except (BrokenPipeError, ConnectionResetError):  # the parent is gone: nobody to tell
        pass
    conn.close()


def _stop_with_parent() -> None:
    """On Linux, have the kernel send this worker SIGINT when its parent dies (even by SIGKILL):
    the part stops as on Ctrl-C instead of running on, orphaned. Where SIGINT is ignored (a
    process started in the background by a shell, ``cmd &``, inherits that) it is SIGTERM,
    which ends the worker at once (its files are written atomically)."""
    if sys.platform != "linux":
        return
    import ctypes

    signum = signal.SIGTERM if signal.getsignal(signal.SIGINT) is signal.SIG_IGN else signal.SIGINT
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signum)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() == 1:  # the parent died before the request took effect
        os.kill(os.getpid(), signum)


@dataclass
class _Running:
    index: int
    process: multiprocessing.process.BaseProcess
    conn: Connection


def run_jobs(
    jobs: Sequence[Job], *, workers: int, threads: int, progress: bool = True, bars: bool = True
) -> tuple[list[Any], dict[str, float]]:
    """``[job.fn(*job.args) for job in jobs]``, in at most ``workers`` processes of ``threads`` threads;
    and each part's seconds by name.

    ``workers == 1`` runs them here, in order, with this process's threads. ``progress``: show the
    parts' stages (and, with workers, a line when a part starts and when it is done); ``bars``: as
    live bars where stderr is a terminal (elsewhere, or with ``bars=False``, as plain lines).
    """
    check_int("workers", workers, lo=1)
    check_int("threads", threads, lo=1)
    with reporting(console_sink(bars)) if progress else nullcontext() as sink:
        if workers == 1:
            results: list[Any] = [None] * len(jobs)
            seconds: dict[str, float] = {}
            for i, job in enumerate(jobs):
                start = time.perf_counter()
                results[i], seconds[job.name] = job.fn(*job.args), time.perf_counter() - start
            return results, seconds
        return _run_workers(jobs, workers, threads, sink)


def _run_workers(
    jobs: Sequence[Job], workers: int, threads: int, sink: Sink | None
) -> tuple[list[Any], dict[str, float]]:
    results: list[Any] = [None] * len(jobs)
    seconds: dict[str, float] = {}
    say = sink.write if sink is not None else _nothing
    ctx = multiprocessing.get_context("spawn")  # fork would copy this process's thread pools mid-state
    pending = sorted(range(len(jobs)), key=lambda i: -jobs[i].cost)
    running: list[_Running] = []
    previous = _forward_sigterm(running)
    try:
        while pending or running:
            while pending and len(running) < workers:
                i = pending.pop(0)
                receive, send = ctx.Pipe(duplex=False)
                process = ctx.Process(target=_child, args=(send, threads, jobs[i].fn, jobs[i].args), name=jobs[i].name)
                process.start()
                send.close()
                running.append(_Running(i, process, receive))
                say(f"{jobs[i].name}: started ({threads} thread(s))")
            done = wait([r.conn for r in running])
            for part in [r for r in running if r.conn in done]:
                message = _receive(part, partial(_show, sink, jobs[part.index].name))
                if message is None:  # progress only: the part runs on
                    continue
                running.remove(part)
                status, value, extra = message
                if status == "error":
                    raise _with_trace(value, extra)
                results[part.index], seconds[jobs[part.index].name] = value, extra
                say(f"{jobs[part.index].name}: done in {extra:.0f} s")
    except BaseException as err:
        from ..training.resume import TrainingInterrupted  # here: a worker need not import Lightning to start

        kept = _stop(running)
        if isinstance(err, KeyboardInterrupt) and not isinstance(err, TrainingInterrupted) and kept is not None:
            raise kept from None
        raise
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return results, seconds


def _nothing(_: Any) -> None:
    pass


def _show(sink: Sink | None, part: str, update: StageUpdate) -> None:
    """A worker's stage update, shown here under its part's name (two parts may name a stage alike)."""
    if sink is not None:
        sink.update(replace(update, part=part))


def _forward_sigterm(running: list[_Running]) -> Any:
    """Pass SIGTERM on to the running parts (each stops its own way: a sweep after the item in
    progress); the handler it replaced, ``None`` off the main thread (where none can be set)."""

    def forward(signum: int, frame: Any) -> None:
        for job in running:
            if job.process.is_alive() and job.process.pid is not None:
                os.kill(job.process.pid, signal.SIGTERM)

    try:
        return signal.signal(signal.SIGTERM, forward)
    except ValueError:
        return None


def _receive(job: _Running, show: Callable[[StageUpdate], None]) -> tuple[str, Any, Any] | None:
    """The part's last message (its result or its error), or ``None`` when only progress was waiting
    (given to ``show``)."""
    try:
        message = job.conn.recv()
        while message[0] == "progress":
            show(message[1])
            if not job.conn.poll():
                return None
            message = job.conn.recv()
    except EOFError:  # died without a word: killed, out of memory
        job.process.join()
        code = job.process.exitcode
        text = (
            f"demo part {job.process.name!r} died (exit code {code}) before it sent a result; its output above "
            "says why (a script that calls run_demo with jobs > 1 must guard it with if __name__ == '__main__':)"
        )
        return "error", RuntimeError(text), ""
    job.process.join()
    return message


def _last(job: _Running, seconds: float) -> tuple[str, Any, Any] | None:
    """The part's last message if it comes within ``seconds`` (its progress on the way is dropped)."""
    deadline = time.monotonic() + seconds
    while job.conn.poll(max(0.0, deadline - time.monotonic())):
        message = _receive(job, _nothing)
        if message is not None:
            return message
    return None


def _with_trace(err: BaseException, trace: str) -> BaseException:
    if trace and not isinstance(err, KeyboardInterrupt):  # an interrupt's message says all a user needs
        if sys.version_info >= (3, 11):
            err.add_note(f"in the worker process:\n{trace}")
        else:  # Python 3.10 has no exception notes: the worker's traceback goes to stderr
            print(f"in the worker process:\n{trace}", file=sys.stderr, flush=True)
    return err


def _stop(running: list[_Running]) -> TrainingInterrupted | None:
    """Interrupt the parts still running (Ctrl-C has reached them already when it came from the terminal),
    collect what they say, kill what hangs; the first training interruption reported, if any."""
    from ..training.resume import TrainingInterrupted

    kept = None
    deadline = time.monotonic() + GRACE_SECONDS
    last = {}
    for job in running:
        last[job.index] = _last(job, 2.0)
        if last[job.index] is None and job.process.is_alive() and job.process.pid is not None:  # not winding down
            try:
                os.kill(job.process.pid, signal.SIGINT)
            except ProcessLookupError:
                pass
    for job in running:
        message = last[job.index] or _last(job, max(0.0, deadline - time.monotonic()))
        if (
            kept is None
            and message is not None
            and message[0] == "error"
            and isinstance(message[1], TrainingInterrupted)
        ):
            kept = message[1]
        if job.process.is_alive():
            job.process.kill()
        job.process.join()
    return kept
