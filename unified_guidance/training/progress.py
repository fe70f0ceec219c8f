"""One progress bar per stage: its name, optimiser steps done / total, and an ETA.

Lightning's bar restarts every epoch and, under ``max_steps`` with ``max_epochs=-1``,
reads ``Epoch 53/-2``. :class:`StepProgressBar` counts global steps against
``trainer.estimated_stepping_batches`` over the whole fit (a resumed fit starts at
its checkpoint's step), names the stage (``"diffusion: training"``) and shows the
epoch and metrics after the bar; ``predict`` reads ``"diffusion: sampling"``.

Where a stage sink is installed (:func:`.stages.reporting`: the demo's parts), :class:`StageReport`
reports the same counts to it instead (plain lines in a log, a worker's updates to its parent);
:func:`progress_callbacks` picks one.
"""

from __future__ import annotations

import math
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback, TQDMProgressBar

from .stages import Stage, current


def _named(label: str | None, stage: str) -> str:
    return f"{label}: {stage}" if label else stage


def progress_callbacks(label: str | None, progress: bool) -> list[Callback]:
    """The progress callback of a demo Trainer: none without ``progress``; :class:`StageReport` where a
    stage sink is installed; else a :class:`StepProgressBar`. The Trainer's ``enable_progress_bar`` is
    whether a :class:`StepProgressBar` is among them."""
    if not progress:
        return []
    return [StageReport(label) if current() is not None else StepProgressBar(label)]


class StageReport(Callback):
    """Optimiser steps of a fit (``"<label>: training"``, done / total over the whole fit, a resumed one
    from its checkpoint's step) and items of a predict (``"<label>: sampling"``) to the stage sink."""

    def __init__(self, label: str | None = None) -> None:
        self.label = label
        self._stage: Stage | None = None
        self._items = 0

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        total = trainer.estimated_stepping_batches
        steps = None if math.isinf(total) else int(total)
        self._stage = Stage(_named(self.label, "training"), steps, initial=trainer.global_step)

    def on_train_batch_end(self, trainer: L.Trainer, *_: Any) -> None:
        if self._stage is not None:
            self._stage.update(trainer.global_step)

    def on_predict_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        items = sum(int(n) for n in trainer.num_predict_batches if not math.isinf(n))
        self._stage, self._items = Stage(_named(self.label, "sampling"), items), 0

    def on_predict_batch_end(self, trainer: L.Trainer, *_: Any) -> None:
        self._items += 1
        if self._stage is not None:
            self._stage.update(self._items)


class StepProgressBar(TQDMProgressBar):
    """A fit-long bar of optimiser steps: ``"<label>: training"``; predict batches: ``"<label>: sampling"``.

    Args:
        label: what trains, e.g. the paradigm (``"diffusion"``); ``None``: the bars read ``training`` / ``sampling``.
        refresh_rate: redraw every this many steps.
    """

    def __init__(self, label: str | None = None, refresh_rate: int = 1) -> None:
        super().__init__(refresh_rate=refresh_rate)
        self.label = label

    def _named(self, stage: str) -> str:
        return _named(self.label, stage)

    @property
    def predict_description(self) -> str:
        return self._named("sampling")

    def on_predict_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx: int = 0) -> None:
        super().on_predict_batch_start(trainer, pl_module, batch, batch_idx, dataloader_idx)
        self.predict_progress_bar.set_description(self.predict_description, refresh=False)  # no "DataLoader 0"

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        bar = self.train_progress_bar = self.init_train_tqdm()
        bar.set_description(self._named("training"), refresh=False)
        total = trainer.estimated_stepping_batches
        bar.reset(total=None if math.isinf(total) else int(total))
        bar.n = bar.initial = trainer.global_step
        bar.refresh()

    def on_train_epoch_start(self, trainer: L.Trainer, *_: Any) -> None:
        pass  # one bar for the whole fit: nothing restarts at an epoch

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx) -> None:
        bar = self.train_progress_bar
        step = trainer.global_step
        if bar.disable or not (step % max(self.refresh_rate, 1) == 0 or step == bar.total):
            return
        bar.n = step
        bar.set_postfix({"epoch": trainer.current_epoch, **self.get_metrics(trainer, pl_module)}, refresh=False)
        bar.refresh()

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        bar = self.train_progress_bar
        if not bar.disable:
            bar.set_postfix({"epoch": trainer.current_epoch, **self.get_metrics(trainer, pl_module)})
