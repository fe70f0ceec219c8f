"""Periodic, atomic, resumable checkpoints for the demo's training, and what Ctrl-C or SIGTERM kept.

Inside ``with resumable(path, every_n_steps=50):`` every :func:`~.fit.fit` saves a full
Lightning checkpoint (weights, optimiser, loop counters) to ``path`` every
``every_n_steps`` optimiser steps — written to a temporary file and renamed over
``path``, its SHA-256 digest beside it in ``PATH.sha256`` (:mod:`.verified`), so a kill at
any moment leaves the previous checkpoint or the new one — and resumes from ``path`` when it
exists and passes its checks, saying so on the progress output (:func:`resume_point`). A
damaged one (digest mismatch, no digest, non-finite weights) is deleted and the training
starts again from step 0, with one line saying why. On Ctrl-C, Lightning shuts down and
exits; :func:`~.fit.fit` turns that into :class:`TrainingInterrupted`, whose
message says which checkpoint was kept (or that none was yet). On SIGTERM the checkpoint
is saved at the step reached first (:mod:`.signals`), and the error carries exit status 143.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import lightning as L

from ..core.numbers import check_int
from .signals import SIGTERM_EXIT_STATUS, stopped_by_sigterm
from .stages import note
from .verified import DamagedFileError, check_finite, load_verified, remove_verified
from .verified_io import install_verified_io


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped on Ctrl-C or SIGTERM; ``checkpoint`` is what was kept (``None``: nothing yet);
    ``exit_status`` what the command exits with (130 after Ctrl-C, 143 after SIGTERM)."""

    def __init__(
        self, message: str, step: int, checkpoint: Path | None, kept_step: int | None, exit_status: int = 130
    ) -> None:
        super().__init__(message)
        self.step, self.checkpoint, self.kept_step, self.exit_status = step, checkpoint, kept_step, exit_status

    def __reduce__(self):  # pickles whole (the demo's worker processes send it back)
        return type(self), (str(self), self.step, self.checkpoint, self.kept_step, self.exit_status)


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
    """Save a resumable checkpoint atomically every ``every_n_steps`` optimiser steps, and at the step
    reached when SIGTERM stops the fit (:func:`resume_point` says when a fit resumes from it)."""

    def __init__(self, spec: ResumeSpec) -> None:
        self.spec = spec
        self.kept_step: int | None = None

    def on_exception(self, trainer: L.Trainer, pl_module, exception: BaseException) -> None:
        if stopped_by_sigterm(trainer, exception) and trainer.global_step != self.kept_step:
            self.save(trainer)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module, outputs, batch, batch_idx) -> None:
        step = trainer.global_step
        if step > 0 and step % self.spec.every_n_steps == 0 and step != self.kept_step:
            self.save(trainer)

    def save(self, trainer: L.Trainer) -> None:
        save_atomically(trainer, self.spec.path)  # optimiser and loop states too: an exact resume
        self.kept_step = trainer.global_step


def save_atomically(trainer: L.Trainer, target: Path, *, weights_only: bool = False) -> None:
    """``trainer.save_checkpoint(target)`` through a :class:`~.verified_io.VerifiedCheckpointIO` (installed
    where the trainer has Lightning's plain IO): a temporary file fsynced and renamed over ``target``, then
    its digest ``TARGET.sha256`` the same way, so a kill at any moment leaves the previous file or the new
    one, never half of one that passes the check. Every rank calls it (the save ends in a barrier); rank 0
    writes, as Lightning's own saving does."""
    install_verified_io(trainer)
    target.parent.mkdir(parents=True, exist_ok=True)
    trainer.save_checkpoint(target, weights_only=weights_only)


def resume_point(spec: ResumeSpec | None, label: str | None = None) -> Path | None:
    """The checkpoint a fit resumes from: ``spec.path`` when it exists and passes its checks.

    Either way one line on the progress output (:func:`~.stages.note`) says what happens:
    ``"flow: resuming training at step 100 from PATH (kept by a stopped run)"``, or, for a
    damaged file, why it cannot be used and that it was deleted (the training then starts from
    step 0).
    """
    if spec is None or not spec.path.exists():
        return None
    who = f"{label}: " if label else ""
    remedy = "deleted it; the training starts again from step 0"
    try:
        ckpt = load_verified(spec.path, what="resume checkpoint", remedy=remedy)
        check_finite(ckpt.get("state_dict", {}), spec.path, what="resume checkpoint", remedy=remedy)
    except DamagedFileError as err:
        remove_verified(spec.path)
        note(f"{who}{err}")
        return None
    note(f"{who}resuming training at step {ckpt.get('global_step', '?')} from {spec.path} (kept by a stopped run)")
    return spec.path


def interrupted(trainer: L.Trainer, saver: PeriodicCheckpoint | None, *, sigterm: bool = False) -> TrainingInterrupted:
    """The error that says what Ctrl-C (or SIGTERM) kept; after Ctrl-C, restores the SIGINT handler
    Lightning switched off."""
    if not sigterm:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    step, status = trainer.global_step, SIGTERM_EXIT_STATUS if sigterm else 130
    stopped = f"training {'stopped by SIGTERM' if sigterm else 'interrupted'} at step {step}"
    if saver is not None and saver.spec.path.exists():
        kept = saver.kept_step
        where = f"step {kept}" if kept is not None else "an earlier run"
        message = (
            f"{stopped}; kept the checkpoint of {where} at {saver.spec.path}: "
            "run the same command again to resume from it"
        )
        return TrainingInterrupted(message, step, saver.spec.path, kept, status)
    every = f" (one is written every {saver.spec.every_n_steps} steps)" if saver is not None else ""
    return TrainingInterrupted(f"{stopped}; no checkpoint was kept yet{every}", step, None, None, status)
