"""Lightning training of a class-conditional diffusion model with per-sample condition dropout and EMA.

The ``objective`` hyper-parameter chooses what is trained: ``"cfg"`` (the default), ``"gft"``,
``"model_guidance"`` or ``"distill"`` (:mod:`unified_guidance.training.objectives`).

The math lives in :mod:`unified_guidance.diffusion` (loss, sampler) and the
network in :mod:`unified_guidance.networks`; this module only wires them into
Lightning: the ε-MSE on batches whose labels are replaced by the null token ∅
with probability ``p_uncond`` per sample (Ho & Salimans, arXiv 2207.12598), an
exponential moving average of the weights with warm-up (used for sampling and
validation; :mod:`unified_guidance.training.ema`), ``predict`` (guided samples,
:mod:`unified_guidance.training.sampling`) and :class:`SampleGridCallback`,
which saves sample grids at a few scales during training.

Randomness of a training step (times, noise, dropout) comes from a generator
seeded by (seed, rank, global step) (:mod:`unified_guidance.training.seeding`),
so a resumed run draws exactly what an uninterrupted one would (its data
in the same order too when the training loader is a
:func:`~unified_guidance.training.loaders.resuming_loader`: a resumed fit with a
``shuffle=True`` DataLoader warns), and DDP ranks
draw differently.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import lightning as L
import torch
from torch import Tensor, nn

from ..core.conditions import drop_condition
from ..diffusion.loss import diffusion_loss
from ..diffusion.model import EpsModel
from ..diffusion.sample import sample as diffusion_sample
from ..guidance.engine import Guidance
from ..networks.default import default_net
from ..networks.embedding import check_num_classes
from ..schedules.noise import CosineSchedule, LinearBetaSchedule
from .ema import ema_copy
from .objectives import ObjectiveMixin, check_objective
from .sampling import GuidedPredictions, check_clip, clip_samples, image_grid, save_png
from .seeding import step_generator

SCHEDULES = {"linear_beta": LinearBetaSchedule, "cosine": CosineSchedule}


class DiffusionModule(ObjectiveMixin, GuidedPredictions, L.LightningModule):
    """ε-prediction (or x0 / v) training of ``net(x, t, labels)`` with a learned null label.

    Args:
        net: the network; ``None`` builds the ``arch`` network for image shapes ``(C, H, W)``
            or :class:`~unified_guidance.networks.MLPNet` for ``(D,)``.
        sample_shape: shape of one sample (digits: ``(1, 8, 8)``).
        num_classes: classes; label ``num_classes`` is ∅.
        width: width of the default network.
        arch: the default network for images: ``"unet"`` (:class:`~unified_guidance.networks.TinyUNet`),
            ``"dit"`` (:class:`~unified_guidance.networks.TinyDiT`, an attention network for PAG/SEG/SLG)
            or ``"dit_cross"`` (the TinyDiT reading its label by cross-attention, for NAG).
        schedule: ``"linear_beta"`` or ``"cosine"``.
        prediction: what the network predicts (``"eps"``, ``"x0"``, ``"v"``); the loss is ε-MSE.
        p_uncond: probability of replacing a sample's label by ∅.
        lr, weight_decay: AdamW.
        ema_decay: decay β of the weight average used for sampling.
        ema_warmup: cap the decay at update n by (1 + n)/(10 + n), so a short run's average
            forgets the random initial weights (:func:`~unified_guidance.training.ema.ema_decay_at`).
        weighting, snr_gamma: loss weighting (see :mod:`unified_guidance.diffusion.loss`).
        sample_steps: DDIM steps of :meth:`sample`.
        clip: clamp samples to [−1, 1] (``True``), never (``False``), or, by default (``None``), only
            image shapes ``(C, H, W)``: 2-D points or vectors are not clamped unless asked
            (:func:`~unified_guidance.training.sampling.clip_samples`, the rule of both modules).
        seed: seeds the per-step generator.
        objective: ``"cfg"``, ``"gft"``, ``"model_guidance"`` or ``"distill"``; with ``scale_range``,
            ``mg_scale``, ``mg_ema``, ``teacher_ckpt`` and ``init_from`` see
            :mod:`unified_guidance.training.objectives`.
    """

    _train_model: EpsModel  # set in __init__, outside the module tree
    _ema_model: EpsModel

    def __init__(
        self,
        net: nn.Module | None = None,
        sample_shape: Sequence[int] = (1, 8, 8),
        num_classes: int = 10,
        width: int = 32,
        arch: str = "unet",
        schedule: str = "linear_beta",
        prediction: str = "eps",
        p_uncond: float = 0.1,
        lr: float = 2e-3,
        weight_decay: float = 0.0,
        ema_decay: float = 0.995,
        ema_warmup: bool = True,
        weighting: str = "none",
        snr_gamma: float = 5.0,
        sample_steps: int = 50,
        clip: bool | None = None,
        seed: int = 0,
        objective: str = "cfg",
        scale_range: tuple[float, float] | None = None,
        mg_scale: float = 0.5,
        mg_ema: bool = False,
        teacher_ckpt: str | None = None,
        init_from: str | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["net"])
        check_clip(clip)
        check_objective(self.hparams)
        if schedule not in SCHEDULES:
            raise ValueError(f"schedule: expected one of {', '.join(SCHEDULES)}, got {schedule!r}")
        if not 0.0 <= p_uncond <= 1.0:
            raise ValueError(f"p_uncond: expected a probability in [0, 1], got {p_uncond}")
        if net is not None:
            check_num_classes(net, num_classes)
        self.sample_shape = tuple(int(d) for d in sample_shape)
        self.net = (
            net if net is not None else default_net(self.sample_shape, num_classes, width, arch, self.takes_strength)
        )
        self.ema = ema_copy(self.net, ema_decay, ema_warmup)
        kwargs = dict(
            path=SCHEDULES[schedule](), prediction=prediction, null_cond=num_classes,
            num_classes=num_classes, sample_shape=self.sample_shape,
        )  # fmt: skip
        # Wrappers sharing the modules' weights, kept out of the module tree (no duplicate state).
        object.__setattr__(self, "_train_model", EpsModel(self.net, **kwargs))
        object.__setattr__(self, "_ema_model", EpsModel(self.ema.module, **kwargs))

    @property
    def model(self) -> EpsModel:
        """The conditional model of the EMA weights (what :meth:`sample` uses by default)."""
        return self._ema_model

    @property
    def trained_model(self) -> EpsModel:
        """The conditional model of the trained (raw) weights."""
        return self._train_model

    def _generator(self, step: int, salt: int = 0) -> torch.Generator:
        return step_generator(self.hparams["seed"], self.global_rank, step, salt)

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        x0, labels = batch
        gen = self._generator(self.global_step)
        labels, dropped = drop_condition(labels, self.hparams["num_classes"], self.hparams["p_uncond"], generator=gen)
        loss = diffusion_loss(
            self._train_model, x0, labels, generator=gen, objective=self.training_objective(),
            weighting=self.hparams["weighting"], snr_gamma=self.hparams["snr_gamma"],
        )  # fmt: skip
        self.log("train/loss", loss, prog_bar=True)
        self.log("train/dropped", dropped.float().mean())
        return loss

    def optimizer_step(self, *args, **kwargs) -> None:
        # The EMA follows each optimiser step before any callback runs, so a checkpoint
        # saved at the end of a batch holds weights and average of the same step.
        super().optimizer_step(*args, **kwargs)
        self.ema.update_parameters(self.net)

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        x0, labels = batch
        gen = self._generator(batch_idx, salt=1)
        loss = diffusion_loss(
            self.model,
            x0,
            labels,
            generator=gen,
            weighting=self.hparams["weighting"],
            objective=self.training_objective(),
        )
        self.log("val/loss", loss, prog_bar=True)
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW(
            self.net.parameters(), lr=self.hparams["lr"], weight_decay=self.hparams["weight_decay"]
        )

    @torch.no_grad()
    def sample(
        self,
        labels: Tensor,
        guidance: Guidance | float,
        *,
        generator: torch.Generator | None = None,
        ema: bool = True,
        **kwargs,
    ) -> Tensor:
        """Samples ``(B, *sample_shape)`` for labels ``(B,)``, clamped to [−1, 1] as ``clip`` says
        (digits: ``(B, 1, 8, 8)``, clamped by default), from the EMA weights (``ema=True``) or the trained ones.
        ``kwargs`` go to :func:`~unified_guidance.diffusion.sample.sample` (``steps`` defaults to ``sample_steps``;
        ``method="ddim_cfgpp"`` samples with CFG++)."""
        kwargs.setdefault("steps", self.hparams["sample_steps"])
        model = self.model if ema else self.trained_model
        was_training = model.net.training
        model.net.eval()
        labels = labels.to(self.device)
        shape = (labels.shape[0], *self.sample_shape)
        try:
            x, _ = diffusion_sample(model, guidance, shape, labels, generator=generator, **kwargs)
        finally:
            model.net.train(was_training)
        return clip_samples(x, self.hparams["clip"], self.sample_shape)


class SampleGridCallback(L.Callback):
    """At the end of every ``every_n_epochs``-th epoch's validation (rank 0): one grid per scale, a row per class.

    Grids are saved as PNG under ``<log_dir>/samples/`` (with matplotlib), logged to a
    logger that has ``add_image`` (TensorBoard), and kept in :attr:`last_grids`.
    """

    def __init__(self, scales: Sequence[float] = (1.0, 3.0, 5.0), per_class: int = 8, every_n_epochs: int = 1,
                 steps: int = 25, seed: int = 0) -> None:  # fmt: skip
        self.scales, self.per_class, self.every_n_epochs = tuple(scales), per_class, every_n_epochs
        self.steps, self.seed = steps, seed
        self.last_grids: dict[float, Tensor] = {}

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not isinstance(pl_module, DiffusionModule):
            raise TypeError(f"pl_module: expected a DiffusionModule to sample, got {type(pl_module).__name__}")
        # epochs count from 0: the n-th, 2n-th … epochs end at current_epoch = n − 1, 2n − 1 …
        if trainer.sanity_checking or not trainer.is_global_zero or (trainer.current_epoch + 1) % self.every_n_epochs:
            return
        labels = torch.arange(pl_module.hparams["num_classes"]).repeat_interleave(self.per_class)
        out_dir = Path(trainer.log_dir or trainer.default_root_dir) / "samples"
        for scale in self.scales:
            gen = torch.Generator(device=pl_module.device).manual_seed(self.seed)
            images = pl_module.sample(labels, Guidance(scale=scale), generator=gen, steps=self.steps)
            grid = image_grid(images, self.per_class)
            self.last_grids[scale] = grid
            name = f"epoch{trainer.current_epoch:03d}_scale{scale:g}"
            experiment = getattr(trainer.logger, "experiment", None)
            if experiment is not None and hasattr(experiment, "add_image"):
                experiment.add_image(f"samples/scale{scale:g}", (grid + 1) / 2, trainer.global_step)
            save_png(grid, out_dir / f"{name}.png")
