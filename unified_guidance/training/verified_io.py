"""Lightning checkpoints with a digest: :mod:`.verified` as a ``CheckpointIO`` plugin, a callback and a loader.

Every ``trainer.save_checkpoint`` (``ModelCheckpoint``, :class:`~.checkpoints.LastCheckpoint`,
the demo's periodic checkpoints) goes through the strategy's ``CheckpointIO``, and so does
every ``ckpt_path`` a ``fit``/``validate``/``test``/``predict`` restores. With
:class:`VerifiedCheckpointIO` there, each checkpoint is written atomically beside its
``.sha256`` digest file and checked before Lightning restores it: a damaged one raises
:class:`~.verified.DamagedFileError` naming the file, instead of a raw unpickling error or,
for flipped bits, a silent reload. It gets there in one of three ways:

* ``L.Trainer(plugins=[VerifiedCheckpointIO()])``;
* the callback :class:`VerifiedCheckpoints` (and :class:`~.checkpoints.LastCheckpoint`, which
  every recipe YAML lists), which installs it when the trainer has Lightning's plain
  ``TorchCheckpointIO`` (another ``CheckpointIO`` you chose is left alone);
* the recipes' CLI (:mod:`.recipe_cli`), which installs it on every trainer it builds.

``Module.load_from_checkpoint(path)`` reads the file itself: use :func:`load_verified_module`.
Remote paths (``s3://…``) are passed to Lightning's own IO unchecked.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any, TypeVar

import lightning as L
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from .verified import load_verified, read_verified, remove_verified, save_verified

REMEDY = "use another checkpoint (an epoch=E-step=S.ckpt beside it, or an earlier copy), or train again"
"""What to do about a damaged recipe checkpoint (the last part of the error)."""

M = TypeVar("M", bound=L.LightningModule)


def _remote(path: Any) -> bool:
    return "://" in str(path)


class VerifiedCheckpointIO(TorchCheckpointIO):
    """``TorchCheckpointIO`` whose files carry a SHA-256 digest file, checked on every load.

    Args:
        require_digest: refuse a checkpoint without a digest file (``False``: load it with an
            :class:`~.verified.UnverifiedFileWarning`, e.g. one written before digests existed).
    """

    def __init__(self, require_digest: bool = False) -> None:
        super().__init__()
        self.require_digest = require_digest

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        if storage_options is not None or _remote(path):
            return super().save_checkpoint(checkpoint, path, storage_options)
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        save_verified(checkpoint, path)

    def load_checkpoint(self, path: Any, map_location: Any = None, weights_only: bool | None = None) -> dict[str, Any]:
        if _remote(path):
            return super().load_checkpoint(path, map_location=map_location, weights_only=weights_only)
        kwargs = {"map_location": map_location, "weights_only": weights_only, "require_digest": self.require_digest}
        try:
            return load_verified(path, remedy=REMEDY, **kwargs)
        except FileNotFoundError as err:
            raise FileNotFoundError(f"Checkpoint file not found: {path}") from err

    def remove_checkpoint(self, path: Any) -> None:
        if _remote(path):
            return super().remove_checkpoint(path)
        remove_verified(path)


def install_verified_io(trainer: L.Trainer) -> None:
    """Give ``trainer`` a :class:`VerifiedCheckpointIO` where it has Lightning's plain ``TorchCheckpointIO``."""
    if type(trainer.strategy.checkpoint_io) is TorchCheckpointIO:
        trainer.strategy.checkpoint_io = VerifiedCheckpointIO()


class VerifiedCheckpoints(L.Callback):
    """Checkpoints of this trainer are written with a digest and checked before a restore.

    Lightning calls ``setup`` before it restores a ``ckpt_path``, so the check covers
    ``fit(ckpt_path=…)`` as well as ``predict``/``validate``/``test``.
    """

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        install_verified_io(trainer)


def load_verified_module(module_class: type[M], path: str | os.PathLike, **kwargs: Any) -> M:
    """``module_class.load_from_checkpoint(path, **kwargs)`` after ``path`` passed its digest check.

    A checkpoint without a digest file loads with an :class:`~.verified.UnverifiedFileWarning`.
    """
    data = read_verified(path, remedy=REMEDY, require_digest=False)
    return module_class.load_from_checkpoint(io.BytesIO(data), **kwargs)
