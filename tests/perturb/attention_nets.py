"""A tiny attention network for the perturbation tests: one call of
``F.scaled_dot_product_attention`` per block, blocks in ``blocks``, labels with ∅ = the last index."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from unified_guidance.diffusion import EpsModel


class Attention(nn.Module):
    def __init__(self, width: int, heads: int, grid: tuple[int, int]) -> None:
        super().__init__()
        self.qkv, self.out, self.heads, self.grid = nn.Linear(width, 3 * width), nn.Linear(width, width), heads, grid

    def forward(self, h: Tensor) -> Tensor:
        q, k, v = self.qkv(h).unflatten(-1, (3, self.heads, -1)).permute(2, 0, 3, 1, 4)
        return self.out(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).flatten(-2))


class Block(nn.Module):
    def __init__(self, width: int, heads: int, grid: tuple[int, int]) -> None:
        super().__init__()
        self.attn, self.mlp = Attention(width, heads, grid), nn.Sequential(nn.Linear(width, width), nn.GELU())

    def forward(self, h: Tensor) -> Tensor:
        h = h + self.attn(h)
        return h + self.mlp(h)


class TokenNet(nn.Module):
    """``(x (B, 1, 4, 4), t, labels) -> (B, 1, 4, 4)``: every pixel a token."""

    def __init__(self, depth: int = 3, width: int = 16, heads: int = 2, classes: int = 3) -> None:
        super().__init__()
        self.inp, self.pos = nn.Linear(1, width), nn.Parameter(torch.randn(16, width) * 0.1)
        self.label, self.time = nn.Embedding(classes + 1, width), nn.Linear(1, width)
        self.blocks = nn.ModuleList(Block(width, heads, (4, 4)) for _ in range(depth))
        self.head = nn.Linear(width, 1)

    def forward(self, x: Tensor, t: Tensor, labels: Tensor) -> Tensor:
        t = t.expand(x.shape[0]) if t.ndim == 0 else t
        h = self.inp(x.flatten(1)[..., None]) + self.pos
        h = h + (self.label(labels) + self.time(t.to(h.dtype)[:, None] / 1000))[:, None]
        for block in self.blocks:
            h = block(h)
        return self.head(h).squeeze(-1).unflatten(1, (1, 4, 4))


def token_model(seed: int = 0, dtype: torch.dtype = torch.float64) -> EpsModel:
    torch.manual_seed(seed)
    return EpsModel(TokenNet().to(dtype), null_cond=3, num_classes=3)
