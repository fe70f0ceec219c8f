"""A thin LightningModule for next-token training of a class-conditional token model.

The math lives in :mod:`unified_guidance.autoregressive` (loss, tokens, decoding);
this module only wires it to Lightning: per-sample condition dropout (class token
→ null token, p = 0.1) drawn from a generator seeded by (seed, rank, global step)
(so a resumed run is exact), AdamW, :meth:`TokenARModule.sample`, and ``predict``
(guided token images, :mod:`unified_guidance.training.sampling`).
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from torch import Tensor

from ..autoregressive.loss import dropped_class_tokens, next_token_loss, sample_digits
from ..autoregressive.model import CausalLMModel
from ..autoregressive.tokens import DigitTokens, digits_token_lm
from ..guidance.engine import Guidance
from .sampling import GuidedPredictions
from .seeding import step_generator


class TokenARModule(GuidedPredictions, L.LightningModule):
    """Class-conditional autoregressive model of 8×8 digits as 64 tokens of 17 grey levels.

    Args:
        width, layers, heads: size of the GPT-2 (any transformers causal LM works the same).
        p_uncond: probability of replacing a sample's class token by the null token.
        lr, weight_decay: AdamW.
        seed: initialisation seed of the network and seed of the per-step generator.
        activation: the GPT-2's MLP activation (:func:`~unified_guidance.autoregressive.digits_token_lm`).

    Batches are ``(images (B, 1, 8, 8) in [−1, 1], labels (B,))``.
    """

    def __init__(
        self,
        width: int = 64,
        layers: int = 4,
        heads: int = 4,
        p_uncond: float = 0.1,
        lr: float = 2e-3,
        weight_decay: float = 0.01,
        seed: int = 0,
        activation: str = "gelu",
    ) -> None:
        super().__init__()
        if not 0.0 <= p_uncond <= 1.0:
            raise ValueError(f"p_uncond: expected a probability in [0, 1], got {p_uncond}")
        self.save_hyperparameters()
        self.layout = DigitTokens()
        lm = digits_token_lm(width, layers, heads, seed=seed, activation=activation)
        # The conditional model used for sampling: (tokens, t, class token) -> logits, ∅ = the null token.
        self.model = CausalLMModel(lm, null_cond=self.layout.null_token, pad_token_id=self.layout.null_token)

    @property
    def lm(self):
        """The transformers GPT-2 inside :attr:`model`."""
        return self.model.lm

    def _loss(self, batch: Any, p_uncond: float, generator: torch.Generator | None = None) -> Tensor:
        images, labels = batch
        cond = dropped_class_tokens(labels, self.layout, p_uncond, generator=generator)
        return next_token_loss(self.lm, cond, self.layout.image_tokens(images))

    def training_step(self, batch: Any, batch_idx: int) -> Tensor:
        gen = step_generator(self.hparams["seed"], self.global_rank, self.global_step)
        loss = self._loss(batch, self.hparams["p_uncond"], gen)
        self.log("train/loss", loss, prog_bar=True)
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self.log("val/loss", self._loss(batch, 0.0), prog_bar=True)

    def configure_optimizers(self):
        return torch.optim.AdamW(self.lm.parameters(), lr=self.hparams["lr"], weight_decay=self.hparams["weight_decay"])

    def predict_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> dict:
        """Guided token images: ``{"labels", "samples" (B, 1, 8, 8), "tokens" (B, 64)}``."""
        out = super().predict_step(batch, batch_idx, dataloader_idx)
        return {**out, "tokens": self.layout.image_tokens(out["samples"])}

    @torch.no_grad()
    def sample(
        self, labels: Tensor, guidance: Guidance | float, *, generator: torch.Generator | None = None, ema: bool = True
    ) -> Tensor:
        """Digits ``(B, 1, 8, 8)`` in [−1, 1] of classes ``labels`` ``(B,)``, decoded under ``guidance``.

        ``ema`` is accepted for the shared contract; this module keeps no EMA (its trained weights serve).
        """
        was_training = self.lm.training
        self.lm.eval()
        try:
            return sample_digits(self.model, labels, guidance, layout=self.layout, generator=generator)
        finally:
            self.lm.train(was_training)
