"""A tiny attention network for the perturbation tests: one call of
``F.scaled_dot_product_attention`` per block, blocks in ``blocks``, labels with ∅ = the last index;
and attention modules called with a context (self, cross or joint attention, by how they are called)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers.models.attention_processor import Attention as DiffusersAttention
from torch import Tensor, nn

from unified_guidance.diffusion import EpsModel


class QKV(nn.Module):
    """Attention written with SDPA: queries from ``x``, keys and values from ``context`` (``x`` when
    absent), or from the concatenation of both streams (``joint=True``, SD3-style)."""

    def __init__(self, width: int = 8, joint: bool = False) -> None:
        super().__init__()
        self.q, self.k, self.v = (nn.Linear(width, width) for _ in range(3))
        self.joint = joint

    def forward(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        if self.joint and context is not None:
            x = torch.cat([x, context], dim=1)
        src = x if context is None or self.joint else context
        q, k, v = (f(s)[:, None] for f, s in ((self.q, x), (self.k, src), (self.v, src)))
        return F.scaled_dot_product_attention(q, k, v)[:, 0]


class Holder(nn.Module):
    """``attn(x, context)`` for any attention module ``attn``; ``context=None``: self-attention."""

    def __init__(self, attn: nn.Module) -> None:
        super().__init__()
        self.attn = attn

    def forward(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        if isinstance(self.attn, nn.MultiheadAttention):
            ctx = x if context is None else context
            return self.attn(x, ctx, ctx, need_weights=False)[0]
        if isinstance(self.attn, DiffusersAttention):
            return self.attn(x, encoder_hidden_states=context)
        return self.attn(x, context)


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
