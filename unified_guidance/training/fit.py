"""Training a paradigm's LightningModule for a fixed number of steps with a fixed seed."""

from __future__ import annotations

import lightning as L

from .compat import quiet_pytree_deprecation, sigterm_exception, was_interrupted
from .predict import quiet_lightning
from .progress import StepProgressBar, progress_callbacks
from .resume import PeriodicCheckpoint, active, interrupted, resume_point
from .verified_io import VerifiedCheckpointIO


def fit(
    module: L.LightningModule,
    datamodule: L.LightningDataModule,
    *,
    max_steps: int,
    seed: int,
    accelerator: str = "cpu",
    devices: int | str = 1,
    progress: bool = True,
    label: str | None = None,
) -> int:
    """``Trainer.fit`` for exactly ``max_steps`` optimiser steps, seeded, without logs or checkpoints.

    Validation is off (the demo judges models by their samples); the caller caches the weights.
    Inside :func:`~.resume.resumable` it checkpoints periodically (with a digest:
    :mod:`.verified`), resumes from that checkpoint when it passes its checks (one line on the
    progress output says so; a damaged one is deleted, said, and the training starts over), and
    raises :class:`~.resume.TrainingInterrupted` (saying what was kept) on Ctrl-C, or on SIGTERM after
    saving the step reached (its ``exit_status``: 143); the resume is
    exact when the datamodule's training loader is a :func:`~.loaders.resuming_loader` (a
    ``shuffle=True`` DataLoader draws a warning). The
    progress bar reads ``"<label>: training"`` and counts steps done / total with an ETA
    (reported to the stage sink instead where one is installed, :mod:`.stages`). Lightning's
    ``LeafSpec`` deprecation (its pytree helper under torch 2.13) is silenced for the fit.
    Returns the number of optimiser steps taken.
    """
    if max_steps < 1:
        raise ValueError(f"max_steps: expected a positive number of steps, got {max_steps}")
    L.seed_everything(seed, workers=True, verbose=False)
    with quiet_lightning(), quiet_pytree_deprecation():
        steps = _fit(module, datamodule, max_steps, accelerator, devices, progress, label)
    if steps < max_steps:  # Lightning only warns ("Total length of DataLoader ... is zero") and returns
        raise ValueError(
            f"datamodule: expected training batches for max_steps={max_steps} optimiser steps, got a fit that "
            f"took {steps}: its train_dataloader gave no batches (or the module skipped every step)"
        )
    return steps


def _fit(module, datamodule, max_steps, accelerator, devices, progress, label) -> int:
    spec = active()
    saver = PeriodicCheckpoint(spec) if spec is not None else None
    shown = progress_callbacks(label, progress)
    trainer = L.Trainer(
        max_steps=max_steps,
        max_epochs=-1,
        accelerator=accelerator,
        devices=devices,
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        enable_progress_bar=any(isinstance(c, StepProgressBar) for c in shown),
        limit_val_batches=0,
        num_sanity_val_steps=0,
        callbacks=shown + ([saver] if saver is not None else []),
        plugins=[VerifiedCheckpointIO(require_digest=True)],
    )
    resume = resume_point(spec, label)
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=resume)
    except SystemExit as stop:
        if was_interrupted(trainer):  # Lightning's answer to Ctrl-C (sys.exit(1)) or to SIGTERM (its SystemExit)
            raise interrupted(trainer, saver, sigterm=isinstance(stop, sigterm_exception())) from None
        raise
    return trainer.global_step
