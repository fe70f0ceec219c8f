"""How a fit stops on SIGTERM: it keeps a checkpoint of the step it reached, then exits with status 143.

A batch scheduler, a container runtime or ``kill`` asks a process to stop with SIGTERM.
Lightning notes the signal, finishes the batch in progress and ends the fit with
``SIGTERMException``, a ``SystemExit`` without a status: a script saw status 0, a finished
training. Here the checkpoint callbacks save the state reached when that exception passes
(:class:`~.checkpoints.LastCheckpoint` its ``last.ckpt``, the demo's
:class:`~.resume.PeriodicCheckpoint` its resume file; at a batch boundary, so the resume is
exact), and the recipes' CLI and the demo exit with :data:`SIGTERM_EXIT_STATUS`, 128 + 15 as
a shell reports a process killed by SIGTERM, after one line on stderr that says what was kept.
Ctrl-C (SIGINT) keeps Lightning's answer, status 1 in a recipe and 130 in the demo: it may
come in the middle of an optimiser step, so it keeps the last periodic checkpoint instead.
"""

from __future__ import annotations

import signal

import lightning as L
from lightning.pytorch.trainer.states import TrainerFn

from .compat import sigterm_exception

SIGTERM_EXIT_STATUS = 128 + signal.SIGTERM
"""The exit status of a recipe or the demo stopped by SIGTERM: 143."""


def stopped_by_sigterm(trainer: L.Trainer, exception: BaseException) -> bool:
    """Whether ``exception`` is Lightning's stop on SIGTERM during a fit that has taken a step (a state to keep)."""
    fitting = trainer.state.fn == TrainerFn.FITTING and not trainer.sanity_checking
    return isinstance(exception, sigterm_exception()) and fitting and trainer.global_step > 0
