"""An MLP for low-dimensional data (2-D mixtures): ``net(x (B, D), t, labels (B,)) -> (B, D)``."""

from __future__ import annotations

from torch import Tensor, nn

from .embedding import ConditioningEmbedding


class MLPNet(nn.Module):
    """An MLP for low-dimensional data: ``x (B, dim)``, ``t``, ``labels (B,)`` → ``(B, dim)``.

    Each of ``depth`` residual blocks adds ``Linear(SiLU(h + emb))`` with ``emb`` the
    :class:`~.embedding.ConditioningEmbedding` of time and label (label ``num_classes`` is ∅).
    ``guidance_input``: also take the guidance strength β = 1/s (``beta`` of forward; a guidance-free
    model, :class:`~.embedding.ConditioningEmbedding`).
    """

    def __init__(
        self, dim: int = 2, num_classes: int = 3, width: int = 128, depth: int = 3, guidance_input: bool = False
    ) -> None:
        super().__init__()
        self.dim = dim
        self.embed = ConditioningEmbedding(num_classes, width, guidance_input)
        self.guidance_input = self.embed.guidance_input
        self.inp = nn.Linear(dim, width)
        self.blocks = nn.ModuleList([nn.Linear(width, width) for _ in range(depth)])
        self.out = nn.Linear(width, dim)

    def forward(self, x: Tensor, t: Tensor, labels: Tensor, beta: Tensor | None = None) -> Tensor:
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"x: expected shape (B, {self.dim}), got {tuple(x.shape)}")
        emb = self.embed(x, t, labels, beta)
        h = self.inp(x)
        for block in self.blocks:
            h = h + block(nn.functional.silu(h + emb))
        return self.out(nn.functional.silu(h))
