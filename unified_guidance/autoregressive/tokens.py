"""Token layouts of class-conditional token models: one's own sequences, and 8×8 grey-level digits.

:class:`SequenceTokens` is the general layout (vocabulary, length, classes); :class:`DigitTokens`
its digits instance, with the image ↔ token maps.

The digits' vocabulary (28 tokens): grey levels 0…16 are tokens 0…16 (the digits' own 17
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
class SequenceTokens:
    """Token layout of a class-conditional model of one's own token sequences.

    Content tokens are ``0 … vocab − 1``, class ``c`` is token ``vocab + c`` and
    ``vocab + classes`` is the null class ∅ (:attr:`null_token`). A sample is
    ``[class token, length content tokens]``: the class token is the condition, the
    null token the reference, and sampling emits content tokens only.
    """

    vocab: int
    length: int
    classes: int

    def __post_init__(self) -> None:
        for name in ("vocab", "length", "classes"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name}: expected a positive integer, got {value!r}")

    @property
    def class_offset(self) -> int:
        return self.vocab

    @property
    def null_token(self) -> int:
        return self.vocab + self.classes

    @property
    def vocab_size(self) -> int:
        """Content tokens, class tokens and ∅: the network's vocabulary."""
        return self.vocab + self.classes + 1

    def class_tokens(self, labels: Tensor) -> Tensor:
        """Labels ``(B,)`` in ``0 … classes − 1`` → class tokens ``(B,)``."""
        if labels.ndim != 1 or labels.dtype not in (torch.long, torch.int):
            raise ValueError(f"labels: expected integer labels of shape (B,), got {labels.dtype} {tuple(labels.shape)}")
        if bool(((labels < 0) | (labels >= self.classes)).any()):
            raise ValueError(f"labels: expected classes in [0, {self.classes - 1}], got {labels.tolist()}")
        return labels.long() + self.class_offset

    def content_tokens(self, tokens: Tensor) -> Tensor:
        """``tokens`` ``(B, length)`` checked to be content tokens ``0 … vocab − 1``, as ``long``."""
        if tokens.ndim != 2 or tokens.shape[1] != self.length or tokens.dtype not in (torch.long, torch.int):
            raise ValueError(
                f"tokens: expected integer tokens of shape (B, {self.length}), got {tokens.dtype} {tuple(tokens.shape)}"
            )
        if bool(((tokens < 0) | (tokens >= self.vocab)).any()):
            raise ValueError(f"tokens: expected content tokens in [0, {self.vocab - 1}]")
        return tokens.long()

    def non_content_tokens(self) -> list[int]:
        """Tokens a sampled position may not take (classes and ∅)."""
        return list(range(self.vocab, self.vocab_size))


@dataclass(frozen=True)
class DigitTokens(SequenceTokens):
    """Token layout of the digits model: 17 grey levels, 64 pixels, 10 classes."""

    vocab: int = GREY_LEVELS
    length: int = PIXELS
    classes: int = NUM_CLASSES

    @property
    def levels(self) -> int:
        return self.vocab

    @property
    def pixels(self) -> int:
        return self.length

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
        return self.non_content_tokens()


def sequence_token_lm(
    layout: SequenceTokens, width: int = 64, layers: int = 4, heads: int = 4, *, seed: int | None = None,
    activation: str = "gelu",
):  # fmt: skip
    """A small randomly initialised GPT-2 over ``layout``'s vocabulary (``length + 1`` positions, padded with ∅):
    :func:`~unified_guidance.networks.gpt2.tiny_gpt2`."""
    return tiny_gpt2(
        layout.vocab_size, layout.length + 1, layout.null_token, width, layers, heads, seed=seed, activation=activation
    )


def digits_token_lm(
    width: int = 64, layers: int = 4, heads: int = 4, *, seed: int | None = None, activation: str = "gelu"
):
    """A small randomly initialised GPT-2 over the digits vocabulary (65 positions, starting from ∅):
    :func:`~unified_guidance.networks.gpt2.tiny_gpt2` with :class:`DigitTokens`' layout."""
    return sequence_token_lm(DigitTokens(), width, layers, heads, seed=seed, activation=activation)
