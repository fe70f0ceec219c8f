"""Sampling a guidance sweep through ``Trainer.predict``, so it spreads over devices.

The sweep is a list of :class:`WorkItem` s — one (setting, class) pair each — served
one per batch by :class:`SweepDataModule`. :class:`SweepPredictor` wraps any
paradigm module with ``.model`` and ``.sample(labels, guidance, generator=...)``;
:class:`SampleWriter` saves each item's samples to its own file as soon as it is
done (atomically), so every rank's work survives and an interrupted sweep
resumes where it stopped. Under a distributed strategy Lightning splits the
items over ranks; the calling process then reads all the files back.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import sys
import time
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import lightning as L
import torch
from lightning.pytorch.callbacks import BasePredictionWriter
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from ..core.model import ConditionalModel
from ..guidance.engine import Guidance
from .compat import quiet_pytree_deprecation, received_sigterm, sigterm_exception
from .progress import StepProgressBar, progress_callbacks
from .results import load_fields, save_fields


@dataclass(frozen=True)
class WorkItem:
    """``num_samples`` samples of class ``label`` under ``guidance``, from noise seeded by ``seed``.

    ``key`` names the item uniquely (e.g. ``"flow/cfg/8/3"``) and ``index`` is its place in the sweep;
    ``options``: keyword arguments of the sampler's ``sample`` as ``(name, value)`` pairs, e.g.
    ``(("method", "ddim_cfgpp"),)`` for a solver-level rule (default: the sampler's own settings).
    """

    index: int
    key: str
    label: int
    num_samples: int
    seed: int
    guidance: Guidance
    options: tuple[tuple[str, Any], ...] = ()


@dataclass(frozen=True)
class SampleResult:
    """One item's samples ``(n, ...)`` (CPU), the model forward rows they cost, and where they ran."""

    index: int
    key: str
    seed: int
    samples: Tensor
    forward_rows: int
    seconds: float
    rank: int


class _Items(Dataset):
    def __init__(self, items: Sequence[WorkItem]) -> None:
        self.items = list(items)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> WorkItem:
        return self.items[i]


def _first(batch: list[WorkItem]) -> WorkItem:
    return batch[0]


class SweepDataModule(L.LightningDataModule):
    """Serves work items one per batch (Lightning shards them over ranks)."""

    def __init__(self, items: Sequence[WorkItem]) -> None:
        super().__init__()
        self.items = list(items)

    def predict_dataloader(self) -> DataLoader:
        return DataLoader(_Items(self.items), batch_size=1, shuffle=False, collate_fn=_first)


class _Sampler(Protocol):
    """What :class:`SweepPredictor` wraps: a paradigm module (an ``nn.Module``) with these two."""

    @property
    def model(self) -> ConditionalModel: ...

    def sample(self, labels: Tensor, guidance: Guidance, *, generator: torch.Generator | None = None) -> Tensor: ...


class SweepPredictor(L.LightningModule):
    """``predict_step(item)`` → :class:`SampleResult`, sampling with the wrapped paradigm module.

    Args:
        sampler: a module with ``.model`` (a ConditionalModel counting ``.stats.rows``) and
            ``.sample(labels (B,), guidance, *, generator, **options) -> (B, ...)`` (``options``: those
            of the :class:`WorkItem`, e.g. a sampling ``method``).
    """

    def __init__(self, sampler: _Sampler) -> None:
        super().__init__()
        for attr in ("model", "sample"):
            if not hasattr(sampler, attr):
                raise TypeError(f"sampler: expected a module with .model and .sample(...), {attr!r} is missing")
        self.sampler = sampler

    def transfer_batch_to_device(self, batch: Any, device: torch.device, dataloader_idx: int) -> Any:
        return batch  # a WorkItem holds no tensors to move; the sampler makes its noise on its device

    def predict_step(self, item: WorkItem, batch_idx: int = 0) -> SampleResult:
        if received_sigterm(self.trainer):  # Lightning's predict loop only notes SIGTERM; stop before the next item
            raise sigterm_exception()
        labels = torch.full((item.num_samples,), item.label, dtype=torch.long, device=self.device)
        generator = torch.Generator(device=self.device).manual_seed(item.seed)
        model = self.sampler.model
        before, start = model.stats.rows, time.perf_counter()
        samples = self.sampler.sample(labels, item.guidance, generator=generator, **dict(item.options))
        seconds = time.perf_counter() - start
        rows = model.stats.rows - before
        return SampleResult(item.index, item.key, item.seed, samples.detach().cpu(), rows, seconds, self.global_rank)


def result_path(directory: Path, index: int) -> Path:
    return directory / f"item-{index:05d}.pt"


class SampleWriter(BasePredictionWriter):
    """Saves each :class:`SampleResult` to ``directory/item-NNNNN.pt`` (temporary file + rename)."""

    def __init__(self, directory: str | os.PathLike) -> None:
        super().__init__(write_interval="batch")
        self.directory = Path(directory)

    def write_on_batch_end(self, trainer, pl_module, prediction, batch_indices, batch, batch_idx, dataloader_idx=0):
        save_fields(result_path(self.directory, prediction.index), asdict(prediction))


def _predict(sampler, items, directory, accelerator, devices, strategy, progress, label) -> None:
    shown = progress_callbacks(label, progress)
    trainer = L.Trainer(
        accelerator=accelerator,
        devices=devices,
        strategy=strategy,
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        enable_progress_bar=any(isinstance(c, StepProgressBar) for c in shown),
        callbacks=[SampleWriter(directory), *shown],
    )
    with warnings.catch_warnings(), quiet_pytree_deprecation():
        # Lightning notes that the module's transfer_batch_to_device wins over the data module's: intended.
        warnings.filterwarnings("ignore", message=".*overridden `transfer_batch_to_device`")
        trainer.predict(SweepPredictor(sampler), datamodule=SweepDataModule(items), return_predictions=False)


def load_result(directory: Path, item: WorkItem) -> SampleResult | None:
    """The saved result of ``item``, or ``None`` if there is none, it belongs to another item, or
    it is damaged (checksum, load or non-finite samples: resampled with a :class:`DamagedResultWarning`)."""
    path = result_path(directory, item.index)
    if not path.exists():
        return None
    data = load_fields(path)
    if data is None:
        return None
    if data.get("key") != item.key or data.get("seed") != item.seed or data["samples"].shape[0] != item.num_samples:
        return None
    return SampleResult(**data)


@contextmanager
def quiet_lightning() -> Iterator[None]:
    """Silence Lightning's start-up notes (accelerators found, tips) while a demo Trainer runs."""
    logger = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def sweep_strategy(accelerator: str, devices: int | str | Sequence[int], strategy: str) -> str:
    """The Lightning strategy a sweep over ``devices`` runs with.

    On several devices Lightning's ``"ddp"`` (and ``"auto"``, which picks it) starts the calling
    script again in each device's process: a script or the demo would redo everything before the
    sweep there and race the first process on the item files. So ``"auto"`` becomes a launcher
    that starts its workers itself (``"ddp_fork"`` on CPU, ``"ddp_spawn"`` elsewhere), each device
    taking its own share of the items, and ``"ddp"`` is refused, saying what to pass instead.
    """
    several = (
        (devices == "auto" and accelerator != "cpu")
        or (isinstance(devices, int) and devices > 1)
        or (isinstance(devices, Sequence) and not isinstance(devices, str) and len(devices) > 1)
    )
    if not several:
        return strategy
    if strategy == "auto":
        return "ddp_fork" if accelerator == "cpu" and "fork" in mp.get_all_start_methods() else "ddp_spawn"
    if strategy == "ddp":
        raise ValueError(
            f"strategy: 'ddp' on {devices} devices starts the calling script again in each device's process, which "
            "repeats the work before the sweep and races on its items; pass 'ddp_spawn' (or 'ddp_fork' on cpu)"
        )
    return strategy


def predict_sweep(
    sampler: nn.Module,
    items: Sequence[WorkItem],
    directory: str | os.PathLike,
    *,
    accelerator: str = "cpu",
    devices: int | str = 1,
    strategy: str = "auto",
    progress: bool = True,
    label: str | None = None,
) -> list[SampleResult]:
    """Sample every item through ``Trainer.predict`` and return the results in item order.

    Items with a saved result in ``directory`` (same key and seed) are not sampled
    again. On several devices the strategy comes from :func:`sweep_strategy` (``"auto"``: one that
    starts its own workers; ``"ddp"`` refused): each rank writes its own items' files.
    The progress bar reads ``"<label>: sampling"`` (items done / total, ETA; to the stage sink
    where one is installed, :mod:`.stages`). On SIGTERM the sweep
    stops after the item in progress and exits with status 143, saying how many
    items are kept; a rerun samples only the rest.
    """
    strategy = sweep_strategy(accelerator, devices, strategy)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    keys = [it.key for it in items]
    if len(set(keys)) != len(keys) or sorted(it.index for it in items) != list(range(len(items))):
        raise ValueError("items: expected unique keys and indices 0 … len(items) − 1")
    todo = [it for it in items if load_result(directory, it) is None]
    if todo:
        with quiet_lightning():
            try:
                _predict(sampler, todo, directory, accelerator, devices, strategy, progress, label)
            except sigterm_exception():
                kept = sum(load_result(directory, it) is not None for it in items)
                print(f"sweep stopped by SIGTERM: {kept} of {len(items)} items kept in {directory}", file=sys.stderr)
                raise SystemExit(143) from None
    results = [load_result(directory, it) for it in items]
    missing = [it.key for it, r in zip(items, results, strict=True) if r is None]
    if missing:
        raise RuntimeError(f"predict_sweep: no samples were written for {len(missing)} items, e.g. {missing[:3]}")
    return results  # type: ignore[return-value]
