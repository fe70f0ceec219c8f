"""A small DiT: a patch transformer ``net(x, t, labels)`` for small images, with adaLN-Zero blocks.

Peebles & Xie, "Scalable Diffusion Models with Transformers" (arXiv 2212.09748):
the image is cut into p×p patches, each patch becomes a token (plus a fixed 2-D
sin-cos position), ``depth`` transformer blocks act on the ``(B, L, D)`` tokens, and
a final layer maps every token back to its patch. Time and label condition every
block through adaptive layer norm: from the conditioning vector ``c`` (the shared
:class:`~unified_guidance.networks.embedding.ConditioningEmbedding` of time and label, label
``num_classes`` = ∅), a zero-initialised linear map gives per block

    shift₁, scale₁, gate₁, shift₂, scale₂, gate₂ = W c + b
    h ← h + gate₁ · Attn(LN(h)·(1 + scale₁) + shift₁)
    h ← h + gate₂ · MLP(LN(h)·(1 + scale₂) + shift₂)

so every block is the identity at construction (adaLN-Zero) and, with the final
layer zero-initialised too, so is the whole network's output (exactly zero).

Module paths, for selecting layers to perturb (PAG, SEG, SLG): ``blocks.i`` is the
i-th block (``forward(h, emb)``, ``h (B, L, D)`` first, returns ``(B, L, D)``);
``blocks.i.attn`` its self-attention, which calls
``torch.nn.functional.scaled_dot_product_attention`` once on ``q, k, v (B, heads, L, d)``.
Tokens are in row-major order over :attr:`TinyDiT.grid` ``(rows, cols)``.

With ``cond_mode="cross"`` the label reaches the tokens through cross-attention instead: ``context``
maps it to a short sequence of ``context_tokens`` learned tokens ``(B, T, D)`` (label ``num_classes``
= ∅ has its own), and every block gains ``blocks.i.cross``, a zero-initialised cross-attention
``forward(hidden_states, encoder_hidden_states)`` read after the self-attention:
``h ← h + Cross(LN(h), context)``. The adaLN conditioning then carries time only (with the ∅ label's
vector as a constant), so the class enters by cross-attention alone, where NAG acts.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ..core.conditions import check_labels
from .embedding import ConditioningEmbedding


def sincos_position_2d(rows: int, cols: int, dim: int) -> Tensor:
    """Fixed 2-D position features ``(rows·cols, dim)``, tokens in row-major order.

    The first ``dim/2`` features encode the row, the rest the column, each as
    ``[sin(pos·ω_k), cos(pos·ω_k)]`` with ``ω_k = 10000^(−k/(dim/4))``, k < dim/4
    (the 1-D features of Vaswani et al., arXiv 1706.03762, per axis). ``dim`` divisible by 4.
    """
    quarter = dim // 4
    omega = torch.exp(-math.log(10_000.0) * torch.arange(quarter, dtype=torch.float64) / quarter)

    def axis(n: int) -> Tensor:
        args = torch.arange(n, dtype=torch.float64)[:, None] * omega[None]
        return torch.cat([torch.sin(args), torch.cos(args)], dim=1)  # (n, dim/2)

    r, c = axis(rows), axis(cols)
    return torch.cat([r[:, None].expand(rows, cols, -1), c[None].expand(rows, cols, -1)], dim=-1).reshape(-1, dim)


class DiTAttention(nn.Module):
    """Multi-head self-attention over ``(B, L, D)`` tokens of a ``grid = (rows, cols)`` (L = rows·cols).

    The attention itself is one call of ``F.scaled_dot_product_attention(q, k, v)``
    with ``q, k, v (B, heads, L, D/heads)``, looked up at call time so that a
    ``TorchFunctionMode`` can replace it (perturbed-attention guidance).
    """

    def __init__(self, width: int, heads: int, grid: tuple[int, int]) -> None:
        super().__init__()
        self.heads, self.grid = heads, grid
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)

    def forward(self, h: Tensor) -> Tensor:
        b, length, width = h.shape
        q, k, v = self.qkv(h).view(b, length, 3, self.heads, width // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v)  # (B, heads, L, d)
        return self.proj(out.transpose(1, 2).reshape(b, length, width))


class DiTCrossAttention(nn.Module):
    """Multi-head cross-attention of ``(B, L, D)`` tokens to a context ``(B, T, D)``: one call of
    ``F.scaled_dot_product_attention`` on ``q (B, heads, L, d)``, ``k, v (B, heads, T, d)``."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.q, self.kv = nn.Linear(width, width), nn.Linear(width, 2 * width)
        self.proj = nn.Linear(width, width)
        nn.init.zeros_(self.proj.weight)  # the block stays the identity at construction
        nn.init.zeros_(self.proj.bias)

    def forward(self, hidden_states: Tensor, encoder_hidden_states: Tensor) -> Tensor:
        b, length, width = hidden_states.shape
        q = self.q(hidden_states).view(b, length, self.heads, -1).transpose(1, 2)
        k, v = self.kv(encoder_hidden_states).unflatten(-1, (2, self.heads, -1)).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v)  # (B, heads, L, d)
        return self.proj(out.transpose(1, 2).reshape(b, length, width))


class LabelTokens(nn.Module):
    """Labels ``(B,)`` (∅ = ``num_classes``) → ``tokens`` learned context tokens each ``(B, T, D)``."""

    def __init__(self, num_classes: int, width: int, tokens: int) -> None:
        super().__init__()
        self.tokens, self.width = tokens, width
        self.table = nn.Embedding(num_classes + 1, tokens * width)

    def forward(self, labels: Tensor) -> Tensor:
        return self.table(labels).view(labels.shape[0], self.tokens, self.width)


def _modulate(h: Tensor, shift: Tensor, scale: Tensor) -> Tensor:
    return h * (1 + scale) + shift


class DiTBlock(nn.Module):
    """One adaLN-Zero transformer block: ``forward(h (B, L, D), emb (B, D)) -> (B, L, D)``."""

    def __init__(self, width: int, heads: int, grid: tuple[int, int], mlp_ratio: int = 4, cross: bool = False) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.attn = DiTAttention(width, heads, grid)
        if cross:
            self.norm_cross = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
            self.cross = DiTCrossAttention(width, heads)
        self.norm2 = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.mlp = nn.Sequential(
            nn.Linear(width, mlp_ratio * width), nn.GELU(approximate="tanh"), nn.Linear(mlp_ratio * width, width)
        )
        self.ada = nn.Linear(width, 6 * width)  # emb is already SiLU-activated by the embedding
        nn.init.zeros_(self.ada.weight)
        nn.init.zeros_(self.ada.bias)

    def forward(self, h: Tensor, emb: Tensor, context: Tensor | None = None) -> Tensor:
        shift1, scale1, gate1, shift2, scale2, gate2 = self.ada(emb)[:, None].chunk(6, dim=-1)
        h = h + gate1 * self.attn(_modulate(self.norm1(h), shift1, scale1))
        if context is not None:
            h = h + self.cross(self.norm_cross(h), context)
        return h + gate2 * self.mlp(_modulate(self.norm2(h), shift2, scale2))


class TinyDiT(nn.Module):
    """A DiT-style patch transformer for small images, conditioned on time and a class label.

    Args:
        in_channels: image channels C.
        image_size: H = W, or ``(H, W)``; both divisible by ``patch_size``.
        num_classes: number of classes; label ``num_classes`` is ∅.
        width: token width D (divisible by ``heads`` and by 4).
        depth: number of blocks.
        heads: attention heads.
        patch_size: p; the token grid is ``(H/p, W/p)``.
        mlp_ratio: hidden width of each block's MLP, in units of D.
        cond_mode: ``"adaln"`` (the label in the adaLN vector) or ``"cross"`` (the label as
            ``context_tokens`` context tokens read by a cross-attention in every block).
        context_tokens: T, the length of the label's context sequence (``"cross"`` only).
        guidance_input: also take the guidance strength β = 1/s (``beta`` of forward; a
            guidance-free model, :class:`~.embedding.ConditioningEmbedding`).

    Shapes: ``x (B, C, H, W)``, ``t (B,)`` or scalar, ``labels (B,)`` → ``(B, C, H, W)``.
    Attributes: ``grid`` (token rows, cols); ``blocks`` (an ``nn.ModuleList`` of :class:`DiTBlock`).
    """

    def __init__(
        self,
        in_channels: int = 1,
        image_size: int | tuple[int, int] = 8,
        num_classes: int = 10,
        width: int = 64,
        depth: int = 4,
        heads: int = 4,
        patch_size: int = 2,
        mlp_ratio: int = 4,
        cond_mode: str = "adaln",
        context_tokens: int = 4,
        guidance_input: bool = False,
    ) -> None:
        super().__init__()
        if cond_mode not in ("adaln", "cross"):
            raise ValueError(f"cond_mode: expected 'adaln' or 'cross', got {cond_mode!r}")
        if isinstance(context_tokens, bool) or not isinstance(context_tokens, int) or context_tokens < 1:
            raise ValueError(f"context_tokens: expected a positive integer, got {context_tokens!r}")
        size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
        if len(size) != 2 or any(s % patch_size for s in size):
            raise ValueError(f"image_size: expected H and W divisible by patch_size {patch_size}, got {image_size}")
        if width % heads or width % 4:
            raise ValueError(f"width: expected a multiple of heads ({heads}) and of 4, got {width}")
        self.in_channels, self.image_size, self.num_classes = in_channels, size, num_classes
        self.patch_size = patch_size
        self.grid: tuple[int, int] = (size[0] // patch_size, size[1] // patch_size)
        self.cond_mode = cond_mode
        self.embed = ConditioningEmbedding(num_classes, width, guidance_input)
        self.guidance_input = self.embed.guidance_input
        self.context = LabelTokens(num_classes, width, context_tokens) if cond_mode == "cross" else None
        self.patch = nn.Conv2d(in_channels, width, patch_size, stride=patch_size)
        self.register_buffer("position", sincos_position_2d(*self.grid, width).float()[None], persistent=False)
        cross = cond_mode == "cross"
        self.blocks = nn.ModuleList([DiTBlock(width, heads, self.grid, mlp_ratio, cross) for _ in range(depth)])
        self.norm = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.final_ada = nn.Linear(width, 2 * width)
        self.out = nn.Linear(width, patch_size * patch_size * in_channels)
        for layer in (self.final_ada, self.out):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def unpatchify(self, tokens: Tensor) -> Tensor:
        """``(B, L, p·p·C)`` tokens → ``(B, C, H, W)`` images (token features ordered (p_row, p_col, C))."""
        (rows, cols), p, c = self.grid, self.patch_size, self.in_channels
        x = tokens.reshape(tokens.shape[0], rows, cols, p, p, c)
        return x.permute(0, 5, 1, 3, 2, 4).reshape(tokens.shape[0], c, rows * p, cols * p)

    def forward(self, x: Tensor, t: Tensor, labels: Tensor, beta: Tensor | None = None) -> Tensor:
        expected = (self.in_channels, *self.image_size)
        if x.ndim != 4 or tuple(x.shape[1:]) != expected:
            raise ValueError(f"x: expected shape (B, {', '.join(map(str, expected))}), got {tuple(x.shape)}")
        context = None
        if self.context is not None:  # the label as context tokens; adaLN sees time (and ∅'s constant)
            check_labels("labels", labels, x.shape[0], self.num_classes)
            context = self.context(labels)
            emb = self.embed(x, t, torch.full_like(labels, self.num_classes), beta)
        else:
            emb = self.embed(x, t, labels, beta)
        h = self.patch(x).flatten(2).transpose(1, 2) + self.position  # (B, L, D), row-major tokens
        for block in self.blocks:
            h = block(h, emb, context)
        shift, scale = self.final_ada(emb)[:, None].chunk(2, dim=-1)
        return self.unpatchify(self.out(_modulate(self.norm(h), shift, scale)))
