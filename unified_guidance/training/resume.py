"""Periodic, atomic, resumable checkpoints for the demo's training, and what Ctrl-C kept.

Inside ``with resumable(path, every_n_steps=50):`` every :func:`~.fit.fit` saves a full
Lightning checkpoint (weights, optimiser, loop counters) to ``path`` every
``every_n_steps`` optimiser steps — written to a temporary file and renamed over
``path``, so a kill at any moment leaves the previous checkpoint or the new one —
and resumes from ``path`` when it exists. On Ctrl-C, Lightning shuts down and
exits; :func:`~.fit.fit` turns that into :class:`TrainingInterrupted`, whose
message says which checkpoint was kept (or that none was yet).
"""

from __future__ import annotations

import os
import signal
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import lightning as L

from ..core.numbers import check_int


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped on Ctrl-C; ``checkpoint`` is what was kept (``None``: nothing yet)."""

    def __init__(self, message: str, step: int, checkpoint: Path | None, kept_step: int | None) -> None:
        super().__init__(message)
        self.step, self.checkpoint, self.kept_step = step, checkpoint, kept_step

    def __reduce__(self):  # pickles whole (the demo's worker processes send it back)
        return type(self), (str(self), self.step, self.checkpoint, self.kept_step)


@dataclass(frozen=True)
class ResumeSpec:
    path: Path
    every_n_steps: int


_ACTIVE: list[ResumeSpec] = []


@contextmanager
def resumable(path: str | os.PathLike, *, every_n_steps: int = 50) -> Iterator[ResumeSpec]:
    """Make every :func:`~.fit.fit` in this block checkpoint to ``path`` and resume from it."""
    check_int("every_n_steps", every_n_steps, lo=1)
    spec = ResumeSpec(Path(path), every_n_steps)
    _ACTIVE.append(spec)
    try:
        yield spec
    finally:
        _ACTIVE.remove(spec)


def active() -> ResumeSpec | None:
    return _ACTIVE[-1] if _ACTIVE else None


class PeriodicCheckpoint(L.Callback):
    """Save a resumable checkpoint atomically every ``every_n_steps`` optimiser steps."""

    def __init__(self, spec: ResumeSpec) -> None:
        self.spec = spec
        self.kept_step: int | None = None

    def on_train_batch_end(self, trainer: L.Trainer, pl_module, outputs, batch, batch_idx) -> None:
        step = trainer.global_step
        if step > 0 and step % self.spec.every_n_steps == 0 and step != self.kept_step:
            self.save(trainer)

    def save(self, trainer: L.Trainer) -> None:
        target = self.spec.path
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        os.close(fd)
        try:
            trainer.save_checkpoint(tmp, weights_only=False)  # optimiser and loop states too: an exact resume
            os.replace(tmp, target)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        self.kept_step = trainer.global_step


def interrupted(trainer: L.Trainer, saver: PeriodicCheckpoint | None) -> TrainingInterrupted:
    """The error that says what Ctrl-C kept; restores the SIGINT handler Lightning switched off."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    step = trainer.global_step
    if saver is not None and saver.spec.path.exists():
        kept = saver.kept_step
        where = f"step {kept}" if kept is not None else "an earlier run"
        message = (
            f"training interrupted at step {step}; kept the checkpoint of {where} at {saver.spec.path}: "
            "run the same command again to resume from it"
        )
        return TrainingInterrupted(message, step, saver.spec.path, kept)
    every = f" (one is written every {saver.spec.every_n_steps} steps)" if saver is not None else ""
    message = f"training interrupted at step {step}; no checkpoint was kept yet{every}"
    return TrainingInterrupted(message, step, None, None)
