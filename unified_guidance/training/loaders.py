"""Training loaders that resume exactly, and the warning that names the fix when one cannot.

A fit resumed from a checkpoint equals the uninterrupted one only if its training
loader replays the same order: the order of an epoch must depend on (seed, epoch)
alone — a ``DataLoader(shuffle=True)`` draws a fresh order from a generator whose
state no checkpoint holds — and after a mid-epoch checkpoint the loader must leave
out the batches already run. :func:`resuming_loader` builds such a loader over any
map-style dataset; the paradigm modules warn (:func:`warn_if_inexact_resume`) when a
resumed fit's loader is not one.
"""

from __future__ import annotations

import warnings
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset, RandomSampler, Sampler

from ..core.numbers import check_int
from .compat import batches_processed_on_restart, epoch_end_as_next_epoch

FIX = (
    "return unified_guidance.training.loaders.resuming_loader(dataset, batch_size, seed=..., trainer=self.trainer) "
    "from the DataModule's train_dataloader (an order that depends only on (seed, epoch), "
    "and that leaves out the batches a mid-epoch checkpoint had run)"
)


class EpochShuffle(Sampler[int]):
    """A shuffle that depends only on (seed, epoch), and resumes in the middle of an epoch.

    Lightning calls :meth:`set_epoch` at every epoch, so a run resumed from a
    checkpoint sees the order an uninterrupted one would; a DataLoader
    ``generator`` restarts whenever the loader is rebuilt and would replay epoch 0.
    After :meth:`skip`, the next pass over that epoch leaves out the first samples of
    its order: the batches a run resumed mid-epoch had already trained on.
    """

    def __init__(self, n: int, seed: int = 0) -> None:
        self.n, self.seed, self.epoch = n, seed, 0
        self.skipped: tuple[int, int] | None = None  # (epoch, samples)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def skip(self, samples: int, epoch: int | None = None) -> None:
        """Leave out the first ``samples`` indices of the next pass, if it is over ``epoch`` (default: the
        current one); a pass over another epoch forgets it (that epoch had ended)."""
        self.skipped = (self.epoch if epoch is None else epoch, samples)

    def __iter__(self):
        gen = torch.Generator().manual_seed(self.seed + self.epoch)
        start = self.skipped[1] if self.skipped is not None and self.skipped[0] == self.epoch else 0
        self.skipped = None
        return iter(torch.randperm(self.n, generator=gen).tolist()[start:])

    def __len__(self) -> int:
        return self.n


def batches_done_this_epoch(trainer: L.Trainer | None) -> int:
    """Training batches a fit resumed from a mid-epoch checkpoint has already run in its epoch (else 0).

    Read from the restored progress of Lightning's training-epoch loop (``Trainer.fit``
    restores it before it asks for the train dataloader): the batches *processed*, since a
    checkpoint saved at the end of a batch (a step checkpoint) counts that batch as processed
    and Lightning completes it on restart.
    """
    return batches_processed_on_restart(trainer)


class ResumingLoader(DataLoader):
    """A DataLoader over :class:`EpochShuffle` that resumes mid-epoch from the trainer's restored progress.

    It has ``state_dict`` / ``load_state_dict`` (empty: the progress lives in the checkpoint's
    loop state), which is how Lightning recognises a loader that resumes where it stopped.
    Build it with :func:`resuming_loader`.
    """

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state_dict: dict) -> None:
        pass


def resuming_loader(
    dataset: Dataset, batch_size: int, *, seed: int, trainer: L.Trainer | None, drop_last: bool = False, **kwargs: Any
) -> ResumingLoader:
    """A shuffled training loader with which a resumed fit equals the uninterrupted one exactly.

    Call it in a DataModule's ``train_dataloader`` with ``trainer=self.trainer`` (Lightning
    restores a checkpoint's progress before it asks for the loader). ``dataset`` is map-style
    (``len`` and indexing); ``kwargs`` go to :class:`~torch.utils.data.DataLoader`
    (``num_workers``, ``collate_fn``, …; not ``shuffle``, ``sampler`` or ``batch_sampler``).
    """
    check_int("batch_size", batch_size, lo=1)
    taken = sorted({"shuffle", "sampler", "batch_sampler"} & kwargs.keys())
    if taken:
        raise TypeError(f"resuming_loader: {', '.join(taken)} cannot be given (the loader shuffles by (seed, epoch))")
    sampler = EpochShuffle(len(dataset), seed)  # type: ignore[arg-type]  # a map-style Dataset has __len__
    done = batches_done_this_epoch(trainer)
    if done:  # only the epoch the checkpoint stopped in: if that one had ended, the next starts whole
        sampler.skip(done * batch_size, epoch=trainer.current_epoch)  # type: ignore[union-attr]  # done > 0: a trainer
    return ResumingLoader(dataset, batch_size=batch_size, sampler=sampler, drop_last=drop_last, **kwargs)


def inexact_resume(loader: object) -> str | None:
    """Why a resumed fit with this training loader would not equal the uninterrupted run (``None``: it would).

    Caught: a :class:`~torch.utils.data.DataLoader` shuffled by a ``RandomSampler`` (``shuffle=True``)
    that keeps no state for Lightning to checkpoint (no ``state_dict`` / ``load_state_dict``).
    """
    if not isinstance(loader, DataLoader) or callable(getattr(loader, "state_dict", None)):
        return None
    sampler = loader.sampler if loader.batch_sampler is None else getattr(loader.batch_sampler, "sampler", None)
    if isinstance(sampler, RandomSampler):
        return (
            "its DataLoader shuffles with a RandomSampler (shuffle=True), whose generator state is not in the "
            "checkpoint, so the resumed run trains on a different order"
        )
    return None


def warn_if_inexact_resume(trainer: L.Trainer) -> None:
    """Warn, naming the fix, when a fit resumed from a checkpoint trains on a loader that cannot resume exactly."""
    if getattr(trainer, "ckpt_path", None) is None:
        return
    loaders = trainer.train_dataloader
    if isinstance(loaders, dict):
        loaders = list(loaders.values())
    for loader in loaders if isinstance(loaders, list | tuple) else [loaders]:
        why = inexact_resume(loader)
        if why is not None:
            warnings.warn(f"resume is not exact: {why}; for an exact resume, {FIX}", UserWarning, stacklevel=2)
            return


class ExactResumeCheck:
    """Mixin of the paradigm modules: a checkpoint saved at an epoch end resumes at the next epoch's start
    (:func:`~.compat.epoch_end_as_next_epoch`: exact under ``max_steps`` too), and at the start of a resumed
    fit, :func:`warn_if_inexact_resume`."""

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        epoch_end_as_next_epoch(checkpoint)
        super_hook = getattr(super(), "on_load_checkpoint", None)
        if super_hook is not None:
            super_hook(checkpoint)

    def on_train_start(self) -> None:
        trainer = getattr(self, "_trainer", None)
        if trainer is not None:
            warn_if_inexact_resume(trainer)
