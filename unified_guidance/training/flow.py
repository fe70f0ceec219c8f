"""Flow matching under Lightning: the loss of :mod:`unified_guidance.flow.loss`, AdamW, an EMA copy.

The ``objective`` hyper-parameter chooses what is trained: ``"cfg"`` (the default), ``"gft"``,
``"model_guidance"`` or ``"distill"`` (:mod:`unified_guidance.training.objectives`).

The math lives in :func:`~unified_guidance.flow.loss.flow_matching_loss` and the
sampler; this module only wires them to a Trainer and exposes the shared
contract of every paradigm: ``.model`` (the ConditionalModel to sample from, EMA
weights when kept), ``.sample(labels, guidance, generator=None, ema=True)`` and
``predict`` (:mod:`unified_guidance.training.sampling`).

A step's randomness (times, noise, condition dropout) comes from a generator
seeded by (seed, rank, global step), so a resumed run is exact when its training
loader is a :func:`~unified_guidance.training.loaders.resuming_loader` (a resumed fit
with a ``shuffle=True`` DataLoader warns).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import lightning as L
import torch
from torch import Tensor, nn
from torch.optim.swa_utils import AveragedModel

from ..flow.loss import flow_matching_loss
from ..flow.model import VelocityModel
from ..flow.sample import sample
from ..flow.solvers import ADAPTIVE
from ..guidance.engine import Guidance
from ..networks.default import default_net
from ..networks.embedding import check_num_classes
from .ema import ema_copy
from .objectives import ObjectiveMixin, check_objective
from .sampling import GuidedPredictions, check_clip, clip_samples
from .seeding import step_generator


class FlowMatchingModule(ObjectiveMixin, GuidedPredictions, L.LightningModule):
    """A conditional velocity network trained by conditional flow matching on the linear path (noise at t = 0).

    Args:
        net: ``net(x, t, labels)`` with label ``num_classes`` as ∅; ``None`` builds the ``arch``
            network for images ``(C, H, W)`` or
            :class:`~unified_guidance.networks.MLPNet` for ``(D,)`` from ``width`` (and a
            checkpoint then reloads from its path alone; a network passed here must be
            passed again to ``load_from_checkpoint``).
        num_classes: number of classes (∅ is label ``num_classes``).
        p_uncond: per-sample condition dropout.
        time_sampler: ``"uniform"`` or ``"logit_normal"``.
        lr, weight_decay: AdamW settings.
        ema_decay: decay β of the EMA weights used for sampling (``None``: sample the trained weights).
        ema_warmup: cap the decay at update n by (1 + n)/(10 + n) (see :mod:`unified_guidance.training.ema`).
        sample_shape: one sample's shape (``(1, 8, 8)`` for digits, ``(2,)`` for the 2-D mixture).
        sample_method, sample_steps: the torchdiffeq method of :meth:`sample` (steps for fixed-grid methods).
        width: width of the default network.
        arch: the default network for images: ``"unet"`` (:class:`~unified_guidance.networks.TinyUNet`),
            ``"dit"`` (:class:`~unified_guidance.networks.TinyDiT`, an attention network for PAG/SEG/SLG)
            or ``"dit_cross"`` (the TinyDiT reading its label by cross-attention, for NAG).
        seed: seeds the per-step generator.
        clip: clamp samples to [−1, 1] (``True``), never (``False``), or, by default (``None``), only
            image shapes ``(C, H, W)`` (:func:`~unified_guidance.training.sampling.clip_samples`, the
            rule of both modules).
        objective: ``"cfg"``, ``"gft"``, ``"model_guidance"`` or ``"distill"``; with ``scale_range``,
            ``mg_scale``, ``mg_ema``, ``teacher_ckpt`` and ``init_from`` see
            :mod:`unified_guidance.training.objectives`.
    """

    def __init__(
        self,
        net: nn.Module | None = None,
        num_classes: int = 10,
        p_uncond: float = 0.1,
        time_sampler: str = "logit_normal",
        lr: float = 2e-3,
        weight_decay: float = 0.0,
        ema_decay: float | None = 0.999,
        ema_warmup: bool = True,
        sample_shape: Sequence[int] = (1, 8, 8),
        sample_method: str = "midpoint",
        sample_steps: int | None = 25,
        width: int = 32,
        arch: str = "unet",
        seed: int = 0,
        clip: bool | None = None,
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
        if net is not None:
            check_num_classes(net, num_classes)
        if not 0.0 <= p_uncond <= 1.0:
            raise ValueError(f"p_uncond: expected a probability in [0, 1], got {p_uncond}")
        shape = tuple(int(d) for d in sample_shape)
        net = net if net is not None else default_net(shape, num_classes, width, arch, self.takes_strength)
        self.velocity = VelocityModel(net, null_cond=num_classes)
        self.ema = None
        if ema_decay is not None:
            self.ema = VelocityModel(ema_copy(net, ema_decay, ema_warmup), null_cond=num_classes)

    @property
    def model(self) -> VelocityModel:
        """The velocity model to sample from (EMA weights when kept)."""
        return self.ema if self.ema is not None else self.velocity

    @property
    def trained_model(self) -> VelocityModel:
        """The velocity model of the trained (raw) weights."""
        return self.velocity

    def _loss(self, batch: tuple[Tensor, Tensor], generator: torch.Generator) -> Tensor:
        x, labels = batch
        hp = self.hparams
        return flow_matching_loss(
            self.velocity, x, labels, p_uncond=hp["p_uncond"], time_sampler=hp["time_sampler"], generator=generator,
            objective=self.training_objective(),
        )  # fmt: skip

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        loss = self._loss(batch, step_generator(self.hparams["seed"], self.global_rank, self.global_step))
        self.log("train/loss", loss, prog_bar=True)
        return loss

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        # the same noise every epoch: comparable curves
        gen = step_generator(self.hparams["seed"], 0, batch_idx, salt=1)
        self.log("val/loss", self._loss(batch, gen), prog_bar=True)

    def optimizer_step(self, *args, **kwargs) -> None:
        # The EMA follows each optimiser step before any callback runs: a checkpoint saved
        # at the end of a batch holds weights and average of the same step.
        super().optimizer_step(*args, **kwargs)
        if self.ema is not None:
            averaged = self.ema.net
            assert isinstance(averaged, AveragedModel)  # ema_copy made it
            averaged.update_parameters(self.velocity.net)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        params = self.velocity.net.parameters()
        return torch.optim.AdamW(params, lr=self.hparams["lr"], weight_decay=self.hparams["weight_decay"])

    @torch.no_grad()
    def sample(
        self,
        labels: Tensor,
        guidance: Guidance | float,
        *,
        generator: torch.Generator | None = None,
        ema: bool = True,
        **kwargs: Any,
    ) -> Tensor:
        """Guided samples for class ``labels`` ``(B,)``: ``(B, *sample_shape)``, clamped as ``clip`` says
        (by default images to [−1, 1], other shapes not at all).

        ``ema=False`` samples the trained weights instead of the EMA. ``kwargs`` go to
        :func:`~unified_guidance.flow.sample.sample` (``method`` defaults to ``sample_method``, ``steps`` to
        ``sample_steps`` for fixed-step methods; ``method="rectified_cfgpp"`` samples with
        Rectified-CFG++). Runs without gradients (a convenience); call
        :func:`~unified_guidance.flow.sample.sample` on :attr:`model` to differentiate through sampling.
        """
        hp = self.hparams
        model = self.model if ema else self.trained_model
        device = generator.device if generator is not None else self.device
        noise = torch.randn((labels.shape[0], *hp["sample_shape"]), generator=generator, device=device).to(self.device)
        kwargs.setdefault("method", hp["sample_method"])
        kwargs.setdefault("steps", None if kwargs["method"] in ADAPTIVE else hp["sample_steps"])
        x, _ = sample(model, guidance, noise, labels.to(self.device), **kwargs)
        return clip_samples(x, hp.get("clip"), hp["sample_shape"])
