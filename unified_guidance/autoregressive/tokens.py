"""Images as token sequences: a class-conditional token model for 8×8 grey-level digits.

Vocabulary (28 tokens): grey levels 0…16 are tokens 0…16 (the digits' own 17
levels), class ``c`` is token ``17 + c``, and token 27 is the null class ∅. A
sample is ``[class token, 64 pixel tokens in raster order]``; the class token is
the condition, the null token the reference. Any transformers causal LM serves;
:func:`digits_token_lm` builds a small GPT-2 for it
(:func:`~unified_guidance.networks.gpt2.tiny_gpt2`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..data.digits import GREY_LEVELS, NUM_CLASSES, from_grey_levels, to_grey_levels
from ..networks.gpt2 import tiny_gpt2

PIXELS = 64


@dataclass(frozen=True)
class DigitTokens:
    """Token layout of the digits model."""

    levels: int = GREY_LEVELS
    classes: int = NUM_CLASSES
    pixels: int = PIXELS

    @property
    def class_offset(self) -> int:
        return self.levels

    @property
    def null_token(self) -> int:
        return self.levels + self.classes

    @property
    def vocab_size(self) -> int:
        return self.levels + self.classes + 1

    def class_tokens(self, labels: Tensor) -> Tensor:
        """Labels ``(B,)`` in 0…9 → class tokens ``(B,)``."""
        if labels.ndim != 1 or labels.dtype not in (torch.long, torch.int):
            raise ValueError(f"labels: expected integer labels of shape (B,), got {labels.dtype} {tuple(labels.shape)}")
        if bool(((labels < 0) | (labels >= self.classes)).any()):
            raise ValueError(f"labels: expected classes in [0, {self.classes - 1}], got {labels.tolist()}")
        return labels.long() + self.class_offset

    def image_tokens(self, images: Tensor) -> Tensor:
        """Images ``(B, 1, 8, 8)`` in [−1, 1] → grey-level tokens ``(B, 64)`` (nearest of 17 levels)."""
        if images.ndim != 4 or images.shape[1:] != (1, 8, 8):
            raise ValueError(f"images: expected shape (B, 1, 8, 8), got {tuple(images.shape)}")
        return to_grey_levels(images).reshape(images.shape[0], self.pixels)

    def images(self, tokens: Tensor) -> Tensor:
        """Grey-level tokens ``(B, 64)`` → images ``(B, 1, 8, 8)`` in [−1, 1]."""
        if tokens.ndim != 2 or tokens.shape[1] != self.pixels:
            raise ValueError(f"tokens: expected shape (B, {self.pixels}), got {tuple(tokens.shape)}")
        if bool(((tokens < 0) | (tokens >= self.levels)).any()):
            raise ValueError(f"tokens: expected grey levels in [0, {self.levels - 1}]")
        return from_grey_levels(tokens).reshape(-1, 1, 8, 8)

    def non_pixel_tokens(self) -> list[int]:
        """Tokens a pixel position may not take (classes and ∅)."""
        return list(range(self.levels, self.vocab_size))


def digits_token_lm(
    width: int = 64, layers: int = 4, heads: int = 4, *, seed: int | None = None, activation: str = "gelu"
):
    """A small randomly initialised GPT-2 over the digits vocabulary (65 positions, starting from ∅):
    :func:`~unified_guidance.networks.gpt2.tiny_gpt2` with :class:`DigitTokens`' layout."""
    layout = DigitTokens()
    return tiny_gpt2(
        layout.vocab_size, layout.pixels + 1, layout.null_token, width, layers, heads, seed=seed, activation=activation
    )
