"""Flow matching under Lightning: the loss of :mod:`unified_guidance.flow.loss`, Adam, an EMA copy.

The math lives in :func:`~unified_guidance.flow.loss.flow_matching_loss` and the
sampler; this module only wires them to a Trainer and exposes the shared
contract of every paradigm: ``.model`` (the ConditionalModel to sample from, EMA
weights when kept) and ``.sample(labels, guidance, generator=None)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import lightning as L
import torch
from torch import Tensor, nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from ..flow.loss import flow_matching_loss
from ..flow.model import VelocityModel
from ..flow.sampler import sample
from ..flow.solvers import ADAPTIVE
from ..guidance.engine import Guidance


class FlowMatchingModule(L.LightningModule):
    """A conditional velocity network trained by conditional flow matching on the linear path.

    Args:
        net: ``net(x, t, labels)`` with label ``num_classes`` as ∅ (e.g. :class:`~unified_guidance.networks.TinyUNet`).
        num_classes: number of classes (∅ is label ``num_classes``).
        p_uncond: per-sample condition dropout.
        time_sampler: ``"uniform"`` or ``"logit_normal"``.
        lr, weight_decay: AdamW settings.
        ema_decay: decay of the EMA weights used for sampling (``None``: sample the trained weights).
        sample_shape: one sample's shape (``(1, 8, 8)`` for digits, ``(2,)`` for the 2-D mixture).
        sample_method, sample_steps: the torchdiffeq method of :meth:`sample` (steps for fixed-grid methods).
    """

    def __init__(
        self,
        net: nn.Module,
        num_classes: int = 10,
        p_uncond: float = 0.1,
        time_sampler: str = "logit_normal",
        lr: float = 2e-3,
        weight_decay: float = 0.0,
        ema_decay: float | None = 0.999,
        sample_shape: Sequence[int] = (1, 8, 8),
        sample_method: str = "midpoint",
        sample_steps: int | None = 25,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["net"])
        self.velocity = VelocityModel(net, null_cond=num_classes)
        self.ema = None
        if ema_decay is not None:
            averaged = AveragedModel(net, multi_avg_fn=get_ema_multi_avg_fn(ema_decay), use_buffers=True)
            self.ema = VelocityModel(averaged.requires_grad_(False), null_cond=num_classes)

    @property
    def model(self) -> VelocityModel:
        """The velocity model to sample from (EMA weights when kept)."""
        return self.ema if self.ema is not None else self.velocity

    def _loss(self, batch: tuple[Tensor, Tensor], generator: torch.Generator | None = None) -> Tensor:
        x, labels = batch
        hp = self.hparams
        return flow_matching_loss(
            self.velocity, x, labels, p_uncond=hp.p_uncond, time_sampler=hp.time_sampler, generator=generator
        )

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        loss = self._loss(batch)
        self.log("train/loss", loss, prog_bar=True)
        return loss

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        gen = torch.Generator().manual_seed(batch_idx)  # the same noise every epoch: comparable curves
        self.log("val/loss", self._loss(batch, gen), prog_bar=True)

    def on_train_batch_end(self, outputs, batch, batch_idx: int) -> None:
        if self.ema is not None:
            self.ema.net.update_parameters(self.velocity.net)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        params = self.velocity.net.parameters()
        return torch.optim.AdamW(params, lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)

    @torch.no_grad()
    def sample(self, labels: Tensor, guidance: Guidance, *, generator: torch.Generator | None = None) -> Tensor:
        """Guided samples for class ``labels`` ``(B,)``: ``(B, *sample_shape)``, images clamped to [−1, 1].

        Runs without gradients (a convenience for demos); call
        :func:`unified_guidance.flow.sample` on :attr:`model` to differentiate through sampling.
        """
        hp = self.hparams
        x0 = torch.randn((labels.shape[0], *hp.sample_shape), generator=generator).to(self.device)
        steps = None if hp.sample_method in ADAPTIVE else hp.sample_steps
        x, _ = sample(self.model, guidance, x0, labels.to(self.device), method=hp.sample_method, steps=steps)
        return x.clamp(-1.0, 1.0) if len(hp.sample_shape) == 3 else x
