"""The demo's independent parts side by side: one spawned process per part, ``workers`` at a time.

The paradigms, the Bayes-view figure and the text section share nothing but read-only inputs
(the evaluator, the reference features) and the output directory, where each writes its own
files. :func:`run_jobs` runs them in separate processes, at most ``workers`` at once, each
with ``threads`` torch threads, the costliest first (so the last to start are the short
ones), and returns their results in the order given. The demo's models are small: on two
cores two 1-thread processes do more work than one 2-thread process (see
``docs/demo.md``).

A part that fails stops the others the way Ctrl-C does (trainings keep their resumable
checkpoint), and its error is raised here with the worker's traceback as a note. Ctrl-C
in the terminal reaches every process of the group: each part stops as it would alone,
and :func:`run_jobs` raises the first :class:`~unified_guidance.training.resume.TrainingInterrupted`
it got back (it says which checkpoint was kept), else ``KeyboardInterrupt``.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import TYPE_CHECKING, Any

from ..core.numbers import check_int

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


def _child(conn: Connection, threads: int, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
    import torch

    _stop_with_parent()
    torch.set_num_threads(threads)
    start = time.perf_counter()
    try:
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
    jobs: Sequence[Job], *, workers: int, threads: int, progress: bool = True
) -> tuple[list[Any], dict[str, float]]:
    """``[job.fn(*job.args) for job in jobs]``, in at most ``workers`` processes of ``threads`` threads;
    and each part's seconds by name.

    ``workers == 1`` runs them here, in order, with this process's threads.
    """
    check_int("workers", workers, lo=1)
    check_int("threads", threads, lo=1)
    results: list[Any] = [None] * len(jobs)
    seconds: dict[str, float] = {}
    if workers == 1:
        for i, job in enumerate(jobs):
            start = time.perf_counter()
            results[i], seconds[job.name] = job.fn(*job.args), time.perf_counter() - start
        return results, seconds
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
                if progress:
                    print(f"{jobs[i].name}: started ({threads} thread(s))", file=sys.stderr, flush=True)
            done = wait([r.conn for r in running])
            for part in [r for r in running if r.conn in done]:
                running.remove(part)
                status, value, extra = _receive(part)
                if status == "error":
                    raise _with_trace(value, extra)
                results[part.index], seconds[jobs[part.index].name] = value, extra
                if progress:
                    print(f"{jobs[part.index].name}: done in {extra:.0f} s", file=sys.stderr, flush=True)
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


def _receive(job: _Running) -> tuple[str, Any, Any]:
    try:
        message = job.conn.recv()
    except EOFError:  # died without a word: killed, out of memory
        job.process.join()
        code = job.process.exitcode
        message = (
            f"demo part {job.process.name!r} died (exit code {code}) before it sent a result; its output above "
            "says why (a script that calls run_demo with jobs > 1 must guard it with if __name__ == '__main__':)"
        )
        return "error", RuntimeError(message), ""
    job.process.join()
    return message


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
    for job in running:
        if job.process.is_alive() and job.process.pid is not None and not job.conn.poll(2.0):  # not winding down
            try:
                os.kill(job.process.pid, signal.SIGINT)
            except ProcessLookupError:
                pass
    for job in running:
        if job.conn.poll(max(0.0, deadline - time.monotonic())):
            status, value, _ = _receive(job)
            if kept is None and status == "error" and isinstance(value, TrainingInterrupted):
                kept = value
        if job.process.is_alive():
            job.process.kill()
        job.process.join()
    return kept
