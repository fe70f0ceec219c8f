"""Thin LightningModules for next-token training of class-conditional token models.

:class:`TokenSequenceModule` models one's own token sequences (vocabulary, length, classes);
:class:`TokenARModule` the digits as 64 grey-level tokens. The math lives in
:mod:`unified_guidance.autoregressive` (loss, tokens, decoding); these modules only wire it
to Lightning: per-sample condition dropout (class token → null token, p = 0.1) drawn from a
generator seeded by (seed, rank, global step) (so a resumed run is exact), AdamW, ``.sample``,
and ``predict`` (guided samples, :mod:`unified_guidance.training.sampling`).

``objective`` chooses what is trained (:mod:`unified_guidance.autoregressive.objectives`):
``"cfg"`` (the default), ``"gft"`` (the model takes β = 1/s: ``CausalLMModel(guidance_input=True)``;
a guided sample is one forward of B rows per token), ``"model_guidance"`` (``mg_scale`` = MG's w;
sample it at scale 1) or ``"distill"`` (from the CFG checkpoint ``teacher_ckpt``; β input as GFT).
The strengths β are drawn after the dropout from the same step generator (``scale_range``).
``init_from``: a checkpoint of the same module whose weights start a fit (fine-tuning a CFG model
into GFT: the zero-initialised strength embedding is all it lacks, so the model starts as the CFG
model); a resumed fit restores its own checkpoint over it. The teacher is no part of the trained
state: it is loaded again from its path after a resume.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from torch import Tensor, nn

from ..autoregressive.loss import dropped_class_tokens, sample_tokens
from ..autoregressive.model import CausalLMModel
from ..autoregressive.objectives import token_objective_loss
from ..autoregressive.tokens import DigitTokens, SequenceTokens, sequence_token_lm
from ..core.model import ConditionalModel
from ..guidance.engine import Guidance
from ..guidance.objectives import sample_strength
from .objectives import ObjectiveMixin, check_objective
from .sampling import GuidedPredictions
from .seeding import step_generator


class TokenModule(ObjectiveMixin, GuidedPredictions, L.LightningModule):
    """What both token modules share: ``layout``, ``model``, the loss, the optimiser, guided token sampling;
    the objective, its teacher and ``init_from`` as the diffusion and flow modules
    (:class:`~unified_guidance.training.objectives.ObjectiveMixin`).

    A subclass sets :attr:`layout` and :attr:`model` in ``__init__`` and maps a batch's
    data to content tokens in :meth:`tokens`.
    """

    layout: SequenceTokens
    model: CausalLMModel

    def _build(self, layout: SequenceTokens, width: int, layers: int, heads: int, p_uncond: float) -> None:
        if not 0.0 <= p_uncond <= 1.0:
            raise ValueError(f"p_uncond: expected a probability in [0, 1], got {p_uncond}")
        hp = self.hparams
        check_objective(hp)
        self.layout = layout
        lm = sequence_token_lm(layout, width, layers, heads, seed=hp["seed"], activation=hp["activation"])
        # The conditional model used for sampling: (tokens, t, class token) -> logits, ∅ = the null token.
        self.model = CausalLMModel(
            lm, null_cond=layout.null_token, pad_token_id=layout.null_token, guidance_input=self.takes_strength
        )

    @property
    def trained_model(self) -> CausalLMModel:
        """The trained model: :attr:`model` itself (no EMA)."""
        return self.model

    def weights_of(self, model: ConditionalModel) -> nn.Module:
        """The weights ``init_from`` copies: the whole token model (the LM and its strength embedding)."""
        return model

    def signature(self) -> tuple[str, Any]:
        return "the token layout", self.layout

    @property
    def lm(self):
        """The transformers GPT-2 inside :attr:`model`."""
        return self.model.lm

    def tokens(self, data: Tensor) -> Tensor:
        """A batch's data → content tokens ``(B, layout.length)``."""
        raise NotImplementedError

    def _loss(self, batch: Any, p_uncond: float, generator: torch.Generator | None = None) -> Tensor:
        data, labels = batch
        cond = dropped_class_tokens(labels, self.layout, p_uncond, generator=generator)
        objective = self.training_objective()
        beta = None
        if objective.takes_strength:  # drawn after the dropout, from the same generator
            beta = sample_strength(objective, labels.shape[0], generator=generator)
        return token_objective_loss(self.model, cond, self.tokens(data), objective, beta=beta)

    def training_step(self, batch: Any, batch_idx: int) -> Tensor:
        gen = step_generator(self.hparams["seed"], self.global_rank, self.global_step)
        loss = self._loss(batch, self.hparams["p_uncond"], gen)
        self.log("train/loss", loss, prog_bar=True)
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self.log("val/loss", self._loss(batch, 0.0), prog_bar=True)

    def configure_optimizers(self):
        # the model's parameters: the LM's, then (a guidance-free model) the strength embedding's
        return torch.optim.AdamW(
            self.model.parameters(), lr=self.hparams["lr"], weight_decay=self.hparams["weight_decay"]
        )

    @torch.no_grad()
    def sample_tokens(
        self, labels: Tensor, guidance: Guidance | float, *, generator: torch.Generator | None = None
    ) -> Tensor:
        """Content tokens ``(B, layout.length)`` of classes ``labels`` ``(B,)``, decoded under ``guidance``
        (class and null tokens never emitted)."""
        was_training = self.lm.training
        self.lm.eval()
        try:
            return sample_tokens(self.model, labels, guidance, layout=self.layout, generator=generator)
        finally:
            self.lm.train(was_training)


class TokenSequenceModule(TokenModule):
    """Class-conditional autoregressive model of one's own token sequences.

    Args:
        vocab: content tokens ``0 … vocab − 1`` (what sampling may emit).
        length: tokens per sequence.
        num_classes: conditions ``0 … num_classes − 1``; class ``c`` is token ``vocab + c`` and
            ∅ (the reference) is token ``vocab + num_classes``
            (:class:`~unified_guidance.autoregressive.tokens.SequenceTokens`).
        width, layers, heads: size of the GPT-2.
        p_uncond: probability of replacing a sample's class token by the null token.
        lr, weight_decay: AdamW.
        seed: initialisation seed of the network and seed of the per-step generator.
        activation: the GPT-2's MLP activation.
        objective, scale_range, mg_scale, teacher_ckpt, init_from: what is trained (module docstring).

    Batches are ``(tokens (B, length) integers in [0, vocab), labels (B,))``; ``.sample`` and
    ``predict`` give token sequences ``(B, length)``.
    """

    def __init__(
        self,
        vocab: int,
        length: int,
        num_classes: int,
        width: int = 64,
        layers: int = 4,
        heads: int = 4,
        p_uncond: float = 0.1,
        lr: float = 2e-3,
        weight_decay: float = 0.01,
        seed: int = 0,
        activation: str = "gelu",
        objective: str = "cfg",
        scale_range: tuple[float, float] | None = None,
        mg_scale: float = 0.5,
        teacher_ckpt: str | None = None,
        init_from: str | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self._build(SequenceTokens(vocab, length, num_classes), width, layers, heads, p_uncond)

    def tokens(self, data: Tensor) -> Tensor:
        return self.layout.content_tokens(data)

    def sample(
        self, labels: Tensor, guidance: Guidance | float, *, generator: torch.Generator | None = None, ema: bool = True
    ) -> Tensor:
        """Token sequences ``(B, length)`` (:meth:`sample_tokens`); ``ema`` is accepted for the shared
        contract (this module keeps no EMA)."""
        return self.sample_tokens(labels, guidance, generator=generator)


class TokenARModule(TokenModule):
    """Class-conditional autoregressive model of 8×8 digits as 64 tokens of 17 grey levels.

    Args:
        width, layers, heads: size of the GPT-2 (any transformers causal LM works the same).
        p_uncond: probability of replacing a sample's class token by the null token.
        lr, weight_decay: AdamW.
        seed: initialisation seed of the network and seed of the per-step generator.
        activation: the GPT-2's MLP activation (:func:`~unified_guidance.autoregressive.digits_token_lm`).
        objective, scale_range, mg_scale, teacher_ckpt, init_from: what is trained (module docstring).

    Batches are ``(images (B, 1, 8, 8) in [−1, 1], labels (B,))``. For other token data:
    :class:`TokenSequenceModule`.
    """

    layout: DigitTokens

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
        objective: str = "cfg",
        scale_range: tuple[float, float] | None = None,
        mg_scale: float = 0.5,
        teacher_ckpt: str | None = None,
        init_from: str | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self._build(DigitTokens(), width, layers, heads, p_uncond)

    def tokens(self, data: Tensor) -> Tensor:
        return self.layout.image_tokens(data)

    def predict_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> dict:
        """Guided token images: ``{"labels", "samples" (B, 1, 8, 8), "tokens" (B, 64)}``."""
        out = super().predict_step(batch, batch_idx, dataloader_idx)
        return {**out, "tokens": self.layout.image_tokens(out["samples"])}

    def sample(
        self, labels: Tensor, guidance: Guidance | float, *, generator: torch.Generator | None = None, ema: bool = True
    ) -> Tensor:
        """Digits ``(B, 1, 8, 8)`` in [−1, 1] of classes ``labels`` ``(B,)``, decoded under ``guidance``.

        ``ema`` is accepted for the shared contract; this module keeps no EMA (its trained weights serve).
        """
        return self.layout.images(self.sample_tokens(labels, guidance, generator=generator))
