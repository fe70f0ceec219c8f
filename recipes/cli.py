"""The recipes' LightningCLI: Lightning's own, with a progress bar that names the paradigm.

Unless ``--trainer.enable_progress_bar=false`` (or a progress bar among the
callbacks), fit shows one bar ``"<paradigm>: training"`` of steps done / total with
an ETA, and predict one ``"<paradigm>: sampling"``
(:class:`~unified_guidance.training.progress.StepProgressBar`).
"""

from __future__ import annotations

from typing import Any

from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import ProgressBar
from lightning.pytorch.cli import LightningCLI

from unified_guidance.training.progress import StepProgressBar


class RecipeCLI(LightningCLI):
    """``LightningCLI(model_class, datamodule_class, ...)`` whose bars read ``label``."""

    def __init__(self, *args: Any, label: str, **kwargs: Any) -> None:
        self.label = label
        kwargs.setdefault("save_config_kwargs", {"overwrite": True})
        super().__init__(*args, **kwargs)

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        config = self.config_init[self.subcommand] if self.subcommand else self.config_init
        trainer = config["trainer"]
        callbacks = list(trainer.get("callbacks") or [])
        if trainer.get("enable_progress_bar") is not False and not any(isinstance(c, ProgressBar) for c in callbacks):
            kwargs.setdefault("callbacks", [*callbacks, StepProgressBar(self.label)])
        return super().instantiate_trainer(**kwargs)
