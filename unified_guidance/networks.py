"""Small conditional networks ``net(x, t, labels)`` for digits (8×8) and 2-D data.

Labels are ``(B,)`` long tensors; index ``num_classes`` is the learned null
token ∅, so an adapter takes ``null_cond=num_classes``. Time ``t`` is a ``(B,)``
or scalar float in [0, 1] (whatever the paradigm's path uses). Outputs have the
shape of ``x``. These are plain ``nn.Module``s: the paradigm adapters turn them
into :class:`~unified_guidance.core.ConditionalModel`s. :class:`TinyDiT` (a patch
transformer with adaLN-Zero blocks, :mod:`unified_guidance.dit`) is the attention
network among them, for perturbation references (PAG, SEG, SLG).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from .core.checks import reads_back
from .core.shapes import batch_time, time_dtype

if TYPE_CHECKING:
    from .dit import TinyDiT


def timestep_embedding(t: Tensor, dim: int, max_period: float = 10_000.0) -> Tensor:
    """Sinusoidal features of ``1000·t``: ``(B,) -> (B, dim)`` (Vaswani et al., arXiv 1706.03762),
    computed in at least float32 (half-precision times collapse)."""
    half = dim // 2
    dtype = time_dtype(t.dtype)
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=dtype) / half)
    args = 1000.0 * t.to(dtype)[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


class _Embedding(nn.Module):
    """Time and label (with a null token) → one conditioning vector ``(B, width)``."""

    def __init__(self, num_classes: int, width: int) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.labels = nn.Embedding(num_classes + 1, width)
        self.time = nn.Sequential(nn.Linear(width, width), nn.SiLU(), nn.Linear(width, width))
        self.width = width

    def forward(self, x: Tensor, t: Tensor, labels: Tensor) -> Tensor:
        if labels.dtype != torch.long or labels.shape != (x.shape[0],):
            raise ValueError(
                f"labels: expected a long tensor of shape ({x.shape[0]},), got {labels.dtype} {tuple(labels.shape)}"
            )
        if reads_back() and bool(((labels < 0) | (labels > self.num_classes)).any()):
            raise ValueError(f"labels: expected class indices in [0, {self.num_classes}] (the last is ∅)")
        t = batch_time(t, x.shape[0], device=x.device, dtype=time_dtype(x.dtype))
        features = timestep_embedding(t, self.width).to(self.labels.weight.dtype)  # the network's dtype
        emb = self.time(features) + self.labels(labels)
        return nn.functional.silu(emb)


class _ResBlock(nn.Module):
    def __init__(self, channels: int, emb_width: int) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(8, channels)
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.film = nn.Linear(emb_width, 2 * channels)
        self.norm2 = nn.GroupNorm(8, channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, h: Tensor, emb: Tensor) -> Tensor:
        scale, shift = self.film(emb)[:, :, None, None].chunk(2, dim=1)
        r = self.conv1(nn.functional.silu(self.norm1(h)))
        r = self.norm2(r) * (1 + scale) + shift
        return h + self.conv2(nn.functional.silu(r))


class TinyUNet(nn.Module):
    """A two-level U-Net for small images, conditioned on time and a class label.

    Args:
        in_channels: image channels C.
        image_size: H = W, divisible by 2.
        num_classes: number of classes; label ``num_classes`` is ∅.
        width: channels at full resolution (doubled at half resolution).

    Shapes: ``x (B, C, H, W)``, ``t (B,)`` or scalar, ``labels (B,)`` → ``(B, C, H, W)``.
    """

    def __init__(self, in_channels: int = 1, image_size: int = 8, num_classes: int = 10, width: int = 64) -> None:
        super().__init__()
        if image_size % 2:
            raise ValueError(f"image_size: expected an even size, got {image_size}")
        self.in_channels, self.image_size, self.num_classes = in_channels, image_size, num_classes
        self.embed = _Embedding(num_classes, width)
        self.inp = nn.Conv2d(in_channels, width, 3, padding=1)
        self.down = _ResBlock(width, width)
        self.pool = nn.Conv2d(width, 2 * width, 3, stride=2, padding=1)
        self.mid = nn.ModuleList([_ResBlock(2 * width, width), _ResBlock(2 * width, width)])
        self.unpool = nn.ConvTranspose2d(2 * width, width, 2, stride=2)
        self.up = _ResBlock(width, width)
        head = nn.Conv2d(width, in_channels, 3, padding=1)
        for p in head.parameters():  # weight and bias: the network starts as the zero prediction
            nn.init.zeros_(p)
        self.out = nn.Sequential(nn.GroupNorm(8, width), nn.SiLU(), head)

    def forward(self, x: Tensor, t: Tensor, labels: Tensor) -> Tensor:
        expected = (self.in_channels, self.image_size, self.image_size)
        if x.ndim != 4 or tuple(x.shape[1:]) != expected:
            raise ValueError(f"x: expected shape (B, {', '.join(map(str, expected))}), got {tuple(x.shape)}")
        emb = self.embed(x, t, labels)
        h0 = self.down(self.inp(x), emb)
        h = self.pool(h0)
        for block in self.mid:
            h = block(h, emb)
        h = self.up(self.unpool(h) + h0, emb)
        return self.out(h)


class MLPNet(nn.Module):
    """An MLP for low-dimensional data: ``x (B, dim)``, ``t``, ``labels (B,)`` → ``(B, dim)``."""

    def __init__(self, dim: int = 2, num_classes: int = 3, width: int = 128, depth: int = 3) -> None:
        super().__init__()
        self.dim = dim
        self.embed = _Embedding(num_classes, width)
        self.inp = nn.Linear(dim, width)
        self.blocks = nn.ModuleList([nn.Linear(width, width) for _ in range(depth)])
        self.out = nn.Linear(width, dim)

    def forward(self, x: Tensor, t: Tensor, labels: Tensor) -> Tensor:
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"x: expected shape (B, {self.dim}), got {tuple(x.shape)}")
        emb = self.embed(x, t, labels)
        h = self.inp(x)
        for block in self.blocks:
            h = h + block(nn.functional.silu(h + emb))
        return self.out(nn.functional.silu(h))


def __getattr__(name: str) -> Any:
    # TinyDiT lives in .dit, which imports _Embedding from here: re-exported on first use (PEP 562).
    if name == "TinyDiT":
        from .dit import TinyDiT

        return TinyDiT
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["MLPNet", "TinyDiT", "TinyUNet", "timestep_embedding"]
