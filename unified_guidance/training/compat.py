"""Every Lightning name the project relies on beyond the plain LightningModule/Trainer API.

The public hooks (``training_step``, ``on_train_batch_end``, ``optimizer_step``,
``predict_step``, ``BasePredictionWriter.write_on_batch_end``, ``ModelCheckpoint``) are
used where they belong. What is read here is what Lightning may move between
releases — registries, loop progress, the signal bookkeeping, warnings to silence —
so a change upstream is one edit (``make test-latest`` shows it first):

* ``AcceleratorRegistry`` / ``StrategyRegistry`` (names for the console script's checks;
  only ``unified_guidance/training`` imports lightning, the CLI asks here);
* ``trainer.fit_loop.restarting`` and ``fit_loop.epoch_loop.batch_progress.current.processed``
  (batches already run when a fit resumes mid-epoch);
* ``trainer.received_sigterm`` and ``SIGTERMException`` (stopping a predict sweep on SIGTERM);
* ``trainer.interrupted`` (Lightning's answer to Ctrl-C: shut down, then ``sys.exit(1)``);
* the per-batch ``LeafSpec`` deprecation Lightning 2.6's pytree helper trips under torch 2.13.

The progress bar (:mod:`.progress`) subclasses ``TQDMProgressBar`` and uses its
``init_train_tqdm``, ``train_progress_bar``, ``predict_progress_bar`` and ``get_metrics``;
``LastCheckpoint`` (:mod:`.checkpoints`) uses ``ModelCheckpoint.CHECKPOINT_NAME_LAST`` and
``FILE_EXTENSION``; the recipes' CLI (``training/recipe_cli.py``) reads ``LightningCLI.config_init``,
extends ``parse_arguments`` and turns off ``_parse_ckpt_path`` (LightningCLI's step that puts a
checkpoint's hyper-parameters over the command line; if it is renamed, the override test of
``tests/training/test_recipe_ckpt_trust.py`` fails). :mod:`.verified_io` subclasses
``TorchCheckpointIO`` (``lightning.fabric.plugins.io.torch_io``) and sets ``strategy.checkpoint_io``.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch


def accelerator_names() -> tuple[str, ...]:
    """Lightning's registered accelerators, plus its aliases ``"auto"`` and ``"gpu"``."""
    from lightning.pytorch.accelerators import AcceleratorRegistry

    return tuple(sorted({*AcceleratorRegistry.available_accelerators(), "auto", "gpu"}))


def strategy_names() -> tuple[str, ...]:
    """Lightning's registered strategies, plus ``"auto"``."""
    from lightning.pytorch.strategies import StrategyRegistry

    return ("auto", *StrategyRegistry.available_strategies())


def accelerator_available(name: str) -> bool:
    """Whether this machine has the accelerator (``cuda``/``gpu``, ``mps``); others are left to Lightning."""
    if name in ("cuda", "gpu"):
        return torch.cuda.is_available()
    if name == "mps":
        return bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
    return True


def batches_processed_on_restart(trainer: Any) -> int:
    """Training batches of the current epoch that a fit restored from a checkpoint has already
    run (0 unless the fit is restarting)."""
    loop = getattr(getattr(trainer, "fit_loop", None), "epoch_loop", None)
    progress = getattr(getattr(loop, "batch_progress", None), "current", None)
    done = int(getattr(progress, "processed", 0) or 0)
    if trainer is None or done == 0 or not trainer.fit_loop.restarting:
        return 0
    return done


def sigterm_exception() -> type[BaseException]:
    """The exception Lightning raises to stop a loop on SIGTERM."""
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    return SIGTERMException


def received_sigterm(trainer: Any) -> bool:
    """Whether the trainer noted a SIGTERM (its predict loop only notes it)."""
    return bool(getattr(trainer, "received_sigterm", False))


def was_interrupted(trainer: Any) -> bool:
    """Whether Lightning shut the fit down on Ctrl-C (it then calls ``sys.exit(1)``)."""
    return bool(getattr(trainer, "interrupted", False))


@contextmanager
def quiet_pytree_deprecation() -> Iterator[None]:
    """Silence the ``isinstance(treespec, LeafSpec)`` deprecation Lightning 2.6 trips once per batch."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")
        yield
