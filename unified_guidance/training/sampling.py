"""Sampling a trained module through ``Trainer.predict``: guided samples written to the run directory.

Every paradigm module mixes in :class:`GuidedPredictions`, so ``predict`` works
the same for all three recipes: each predict batch is a tensor of class labels,
sampled under :attr:`GuidedPredictions.predict_guidance` from the EMA or the
trained weights. :class:`GuidedSampleWriter` sets that guidance from its own
arguments (a recipe's YAML or the command line) and writes, at the end,

- ``samples.pt``: ``labels (N,)``, ``samples (N, ...)`` and, for token models, ``tokens (N, 64)``;
- ``grid.png``: image samples as a grid, a row per class (needs matplotlib).
"""

from __future__ import annotations

import os
import sys
from collections.abc import MutableMapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import lightning as L
import torch
from lightning.pytorch.callbacks import BasePredictionWriter
from torch import Tensor

from ..guidance.engine import Guidance
from ..guidance.rules import Rule
from ..schedules.scale import Schedule
from .loaders import ExactResumeCheck


class _Sampling(Protocol):
    """What :class:`GuidedPredictions` needs of the LightningModule it is mixed into."""

    predict_guidance: Guidance
    predict_ema: bool

    @property
    def device(self) -> torch.device: ...

    @property
    def hparams(self) -> MutableMapping: ...

    def sample(self, labels: Tensor, guidance: Guidance, *, generator: torch.Generator | None, ema: bool) -> Tensor: ...


class GuidedPredictions(ExactResumeCheck):
    """Mixin: ``predict_step(labels (B,), batch_idx) -> {"labels", "samples"}`` under :attr:`predict_guidance`.

    Through :class:`~.loaders.ExactResumeCheck` it also warns, naming the fix, when a fit
    resumed from a checkpoint trains on a loader that cannot resume exactly.

    The module needs ``.sample(labels, guidance, *, generator, ema)`` and ``hparams["seed"]``;
    batch ``i`` draws its noise from a generator seeded by ``(seed, i)``, so a prediction is
    reproducible batch by batch.
    """

    predict_guidance: Guidance = Guidance(scale=3.0)
    predict_ema: bool = True

    def predict_step(
        self: _Sampling, batch: Tensor | Sequence[Tensor], batch_idx: int, dataloader_idx: int = 0
    ) -> dict:
        labels = batch if isinstance(batch, Tensor) else batch[-1]
        generator = torch.Generator(device=self.device).manual_seed(self.hparams["seed"] * 100_003 + batch_idx)
        samples = self.sample(labels, self.predict_guidance, generator=generator, ema=self.predict_ema)
        return {"labels": labels.cpu(), "samples": samples.cpu()}


def check_clip(clip: object) -> None:
    """``clip`` of a paradigm module: ``True``, ``False`` or ``None`` (see :func:`clip_samples`)."""
    if clip is not None and not isinstance(clip, bool):
        raise TypeError(f"clip: expected True, False or None (clamp images only), got {clip!r}")


def clip_samples(x: Tensor, clip: bool | None, sample_shape: Sequence[int]) -> Tensor:
    """The paradigm modules' one clamping rule for samples ``x`` ``(B, *sample_shape)``.

    ``clip=True`` clamps to [−1, 1], ``False`` never clamps; ``None`` (the modules' default)
    clamps images ``(C, H, W)`` only, the range the bundled image data and the default
    networks use, and leaves any other shape (2-D points, feature vectors) as sampled.
    """
    if clip is None:
        clip = len(sample_shape) == 3
    return x.clamp(-1.0, 1.0) if clip else x


def image_grid(images: Tensor, nrow: int) -> Tensor:
    """``(B, C, H, W)`` → one ``(C, rows·(H+1)−1, nrow·(W+1)−1)`` image, one pixel of padding at −1."""
    b, c, h, w = images.shape
    rows = -(-b // nrow)
    padded = torch.full((rows * nrow, c, h + 1, w + 1), -1.0, dtype=images.dtype)
    padded[:b, :, :h, :w] = images.cpu()
    grid = padded.reshape(rows, nrow, c, h + 1, w + 1).permute(2, 0, 3, 1, 4)
    return grid.reshape(c, rows * (h + 1), nrow * (w + 1))[:, :-1, :-1]


def save_png(grid: Tensor, path: Path) -> bool:
    """Save a ``(1, H, W)`` grid in [−1, 1] as a grey PNG; ``False`` when matplotlib is missing."""
    try:
        import matplotlib.pyplot as plt
    except ImportError:  # the plots extra is optional
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    plt.imsave(path, ((grid[0] + 1) / 2).clamp(0, 1).numpy(), cmap="gray", vmin=0.0, vmax=1.0)
    return True


class GuidedSampleWriter(BasePredictionWriter):
    """Sets the guidance of ``Trainer.predict`` and writes its samples to ``directory``.

    Args:
        scale: guidance scale s, or a :class:`~unified_guidance.schedules.Schedule` of progress τ.
        rule: a rule name (``"cfg"``, ``"apg"``, ``"cfg_zero_star"``) or a :class:`~unified_guidance.guidance.Rule`.
        post: post-processes by name (``"rescale"``, ``"dynamic_threshold"``, …).
        ema: sample from the EMA weights (``True``) or the trained weights (``False``); ignored
            by modules without an EMA.
        directory: where to write; default ``<log_dir>/predictions`` (the run directory).
    """

    def __init__(
        self,
        scale: Schedule | float = 3.0,
        rule: Rule | str = "cfg",
        post: Sequence[str] = (),
        ema: bool = True,
        directory: str | os.PathLike | None = None,
    ) -> None:
        super().__init__(write_interval="epoch")
        self.guidance = Guidance(rule=rule, scale=scale, post=tuple(post))
        self.ema, self.directory = ema, directory
        self.written: Path | None = None

    def on_predict_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not isinstance(pl_module, GuidedPredictions):
            raise TypeError(f"pl_module: expected a module mixing in GuidedPredictions, got {type(pl_module).__name__}")
        pl_module.predict_guidance = self.guidance
        pl_module.predict_ema = self.ema

    def out_dir(self, trainer: L.Trainer) -> Path:
        if self.directory is not None:
            return Path(self.directory)
        return Path(trainer.log_dir or trainer.default_root_dir) / "predictions"

    def write_on_epoch_end(self, trainer, pl_module, predictions: Sequence[Any], batch_indices) -> None:
        if not predictions:
            return
        keys = predictions[0].keys()
        out = {k: torch.cat([p[k] for p in predictions]) for k in keys}
        directory = self.out_dir(trainer)
        directory.mkdir(parents=True, exist_ok=True)
        suffix = f"-rank{trainer.global_rank}" if trainer.world_size > 1 else ""
        path = directory / f"samples{suffix}.pt"
        torch.save({**out, "guidance": repr(self.guidance), "ema": self.ema}, path)
        if out["samples"].ndim == 4:
            per_row = max(int(n) for n in torch.unique(out["labels"], return_counts=True)[1])
            order = torch.argsort(out["labels"], stable=True)
            save_png(image_grid(out["samples"][order], per_row), directory / f"grid{suffix}.png")
        self.written = path
        print(f"predict: wrote {len(out['labels'])} samples to {path}", file=sys.stderr)
