"""The recipes' LightningCLI: Lightning's own, on any DataModule, with a progress bar that names the paradigm.

``--data`` takes any :class:`~lightning.pytorch.LightningDataModule` by class path
(LightningCLI's subclass mode): ``--data my_module.MyDataModule --data.batch_size=64``,
or a ``data: {class_path: …, init_args: …}`` section in a ``--config``. The recipe's
packaged YAML is the default configuration (the digits), so ``fit`` alone trains on them
and every value can be overridden on the command line or by another ``--config``.

Unless ``--trainer.enable_progress_bar=false`` (or a progress bar among the
callbacks), fit shows one bar ``"<paradigm>: training"`` of steps done / total with
an ETA, and predict one ``"<paradigm>: sampling"``
(:class:`~unified_guidance.training.progress.StepProgressBar`).

Checkpoints are trusted only after a check: every trainer the CLI builds writes its
checkpoints with a digest and checks a ``--ckpt_path`` before restoring it
(:mod:`~unified_guidance.training.verified_io`); a damaged one is refused in argparse's
format, naming the file (exit status 2).

``--ckpt_path`` and the model's settings (:mod:`.ckpt_hparams`): the checkpoint's
hyper-parameters replace those of the YAML and of ``--config`` files (they rebuild the network
it was trained with), and ``--model.*`` values on the command line replace the checkpoint's —
``predict --ckpt_path … --model.sample_steps=7`` samples with 7 steps. (Lightning's own
LightningCLI applies the checkpoint's over everything.)
SIGTERM stops a subcommand with exit status 143 (:mod:`.signals`) and one line on stderr; a
fit keeps ``last.ckpt`` at the step it reached first (the recipes' :class:`~.checkpoints.LastCheckpoint`)
and the line names it: ``fit stopped by SIGTERM at step 37; kept <run>/checkpoints/last.ckpt:
resume with fit --ckpt_path <that path>``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import ProgressBar
from lightning.pytorch.cli import LightningCLI

from .checkpoints import LastCheckpoint
from .ckpt_hparams import with_checkpoint_hparams
from .compat import sigterm_exception
from .progress import StepProgressBar
from .signals import SIGTERM_EXIT_STATUS
from .verified_io import install_verified_io


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
        trainer = super().instantiate_trainer(**kwargs)
        install_verified_io(trainer)
        return trainer

    def parse_arguments(self, parser: Any, args: Any) -> None:
        super().parse_arguments(parser, args)
        self.config = with_checkpoint_hparams(parser, self.config, args)

    def _parse_ckpt_path(self) -> None:
        """Lightning's step that puts the checkpoint's hyper-parameters over the command line:
        :meth:`parse_arguments` has done it already, the command line winning (see ``training/compat.py``)."""

    def _run_subcommand(self, subcommand: str) -> None:
        try:
            super()._run_subcommand(subcommand)
        except sigterm_exception():  # Lightning's stop on SIGTERM is a SystemExit without a status (0)
            print(_sigterm_line(self.trainer, subcommand), file=sys.stderr, flush=True)
            raise SystemExit(SIGTERM_EXIT_STATUS) from None


def _sigterm_line(trainer: Trainer, subcommand: str) -> str:
    if subcommand != "fit":  # validate, test: nothing to keep (Lightning's predict loop runs on to its end)
        return f"{subcommand} stopped by SIGTERM"
    saved = (c.sigterm_saved for c in trainer.checkpoint_callbacks if isinstance(c, LastCheckpoint))
    kept = next((path for path in saved if path is not None), None)
    stopped = f"fit stopped by SIGTERM at step {trainer.global_step}"
    if kept is None:  # no LastCheckpoint among the callbacks
        return f"{stopped}; no checkpoint was kept"
    return f"{stopped}; kept {kept}: resume with fit --ckpt_path {kept}"


def run_recipe(
    model_class: type[L.LightningModule],
    config: Path,
    label: str,
    args: list[str] | None = None,
    run: bool = True,
    *,
    any_model: bool = False,
) -> RecipeCLI:
    """The recipe's CLI: ``model_class`` configured by the YAML ``config`` (the default) and ``args``.

    Args:
        model_class: the Lightning module the recipe trains (its ``__init__`` signature is ``--model``).
        config: the recipe's YAML, read before any ``--config`` and command-line value.
        label: the paradigm, shown in the progress bar.
        args: the command line (``None``: ``sys.argv``), e.g. ``["fit", "--data", "my.DataModule"]``.
        run: run the subcommand; ``False`` only instantiates (no subcommand then).
        any_model: ``--model`` takes any subclass of ``model_class`` by class path (LightningCLI's
            subclass mode; the YAML's ``model`` section then names its ``class_path``).
    """
    if not config.is_file():
        raise FileNotFoundError(f"config: expected the recipe's YAML file, got {config} (not a file)")
    return RecipeCLI(
        model_class,
        L.LightningDataModule,
        subclass_mode_model=any_model,
        subclass_mode_data=True,
        parser_kwargs=_default_config(config, run),
        args=args,
        run=run,
        label=label,
    )


def _default_config(config: Path, run: bool) -> dict[str, Any]:
    # With run=True the parser has one subparser per subcommand; each gets the YAML as its default.
    kwargs = {"default_config_files": [str(config)]}
    if not run:
        return kwargs
    return {sub: kwargs for sub in ("fit", "validate", "test", "predict")}
