"""The recipes' checkpoints: a ``last.ckpt`` at a fixed epoch interval and at the end of every fit.

Lightning's :class:`~lightning.pytorch.callbacks.ModelCheckpoint` saves at the end
of validation when validation does not run every epoch, so an interval shorter
than ``check_val_every_n_epoch`` silently becomes the validation interval, and
it does not refresh ``last.ckpt`` when a fit stops between intervals
(``max_steps``). :class:`LastCheckpoint` saves at the end of each
``every_n_epochs``-th training epoch whatever the validation interval, once
more when the fit ends (at the batch that reaches ``max_steps``, or at the end of
the last epoch), and when SIGTERM stops the fit (at the batch it reached:
:mod:`.signals`). Every one of these resumes exactly, under ``max_epochs`` or
``max_steps``: the modules draw their randomness from the global step, resume an
epoch-end checkpoint at the next epoch's start, the data order depends on (seed,
epoch), and the digits' loader skips the batches a mid-epoch checkpoint had already run.

Each file gets a ``.sha256`` digest file and is checked before a restore: the callback installs
:class:`~.verified_io.VerifiedCheckpointIO` on a trainer with Lightning's plain checkpoint IO.
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint

from .resume import save_atomically
from .signals import stopped_by_sigterm
from .verified_io import install_verified_io


class LastCheckpoint(ModelCheckpoint):
    """``<dirpath>/last.ckpt`` (and the latest ``epoch=E-step=S.ckpt``) every ``every_n_epochs`` epochs, at fit end
    and on SIGTERM (:attr:`sigterm_saved` is then the path).

    Args:
        every_n_epochs: the interval, in training epochs (validation need not run then).
        dirpath: default ``<log_dir>/checkpoints`` (Lightning's choice).
        save_top_k: how many ``epoch=E-step=S.ckpt`` files to keep besides ``last.ckpt`` (the latest ones).
    """

    sigterm_saved: Path | None = None
    """Where the fit's SIGTERM checkpoint went (``None``: SIGTERM did not stop this fit)."""

    def __init__(self, every_n_epochs: int = 1, dirpath: str | None = None, save_top_k: int = 1) -> None:
        if every_n_epochs < 1:
            raise ValueError(f"every_n_epochs: expected a positive number of epochs, got {every_n_epochs}")
        super().__init__(
            dirpath=dirpath, every_n_epochs=every_n_epochs, save_on_train_epoch_end=True, save_last=True,
            save_top_k=save_top_k,
        )  # fmt: skip

    @property
    def last_path(self) -> Path:
        """Where ``last.ckpt`` is written (known once the fit has started)."""
        if self.dirpath is None:
            raise RuntimeError("last_path: the checkpoint directory is not known before the fit starts")
        return Path(self.dirpath) / f"{self.CHECKPOINT_NAME_LAST}{self.FILE_EXTENSION}"

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        install_verified_io(trainer)  # before Lightning restores a ckpt_path: that one is checked too

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_start(trainer, pl_module)
        self._saved_at_max_steps = False
        self.sigterm_saved = None

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx) -> None:
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        # A fit that stops at max_steps keeps its last steps, saved where a step checkpoint is
        # (after the batch, before Lightning closes the epoch), so it resumes mid-epoch exactly.
        if 0 < trainer.max_steps <= trainer.global_step and not trainer.sanity_checking:
            self.write_last(trainer)
            self._saved_at_max_steps = True

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # A fit that ends by max_epochs (or any other stop) between intervals keeps its last epoch.
        if trainer.global_step > 0 and not getattr(self, "_saved_at_max_steps", False):
            self.write_last(trainer)

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        # SIGTERM: Lightning stops after the batch in progress; keep that state (a kill that follows
        # leaves the previous last.ckpt or this one, never half a file).
        if stopped_by_sigterm(trainer, exception) and self.dirpath is not None:
            self.write_last(trainer)
            self.sigterm_saved = self.last_path

    def write_last(self, trainer: L.Trainer) -> None:
        """Write ``last.ckpt`` now (atomically: a temporary file renamed over it)."""
        save_atomically(trainer, self.last_path, weights_only=self.save_weights_only)
