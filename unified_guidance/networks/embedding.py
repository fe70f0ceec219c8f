"""The conditioning every network here shares: time and class label → one vector ``(B, width)``.

Time ``t`` (a ``(B,)`` or scalar float in [0, 1]) becomes sinusoidal features of ``1000·t``
(:func:`timestep_embedding`) passed through a two-layer MLP; the label (a ``(B,)`` long
tensor, index ``num_classes`` = the learned null token ∅) a learned vector; their sum,
SiLU-activated, conditions every block of :class:`~.unet.TinyUNet`, :class:`~.mlp.MLPNet`
and :class:`~.dit.TinyDiT`. A further conditioning input of every network belongs here: with
``guidance_input=True`` the guidance strength β = 1/s of a guidance-free model (GFT, Chen et al.,
arXiv 2501.15420; guidance distillation, Meng et al., arXiv 2210.03142) is embedded the same way
as time and added. Its last layer starts at zero, so a network given the input starts as the
network without it: a trained CFG checkpoint loads into it (``strict=False``) unchanged, the
fine-tuning path of GFT.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ..core.checks import reads_back
from ..core.shapes import batch_time, time_dtype


def timestep_embedding(t: Tensor, dim: int, max_period: float = 10_000.0) -> Tensor:
    """Sinusoidal features of ``1000·t``: ``(B,) -> (B, dim)`` (Vaswani et al., arXiv 1706.03762),
    computed in at least float32 (half-precision times collapse)."""
    half = dim // 2
    dtype = time_dtype(t.dtype)
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=dtype) / half)
    args = 1000.0 * t.to(dtype)[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


class StrengthEmbedding(nn.Sequential):
    """The guidance strength β = 1/s of a guidance-free model → a vector: sinusoidal features of β
    through a two-layer MLP whose last layer starts at zero (the network given it starts as the
    network without it). ``(B,) -> (B, width)`` in the MLP's dtype; β in (0, 1] (GFT, Chen et al.,
    arXiv 2501.15420). :class:`ConditioningEmbedding` adds it to time + label; a causal LM to
    its input embeddings (:class:`~unified_guidance.autoregressive.CausalLMModel`)."""

    def __init__(self, width: int) -> None:
        last = nn.Linear(width, width)
        super().__init__(nn.Linear(width, width), nn.SiLU(), last)
        self.width = width
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)

    def forward(self, beta: Tensor) -> Tensor:
        return super().forward(timestep_embedding(beta, self.width).to(next(self.parameters()).dtype))


class ConditioningEmbedding(nn.Module):
    """Time, label (with a null token) and, optionally, guidance strength → one vector ``(B, width)``.

    Args:
        num_classes: number of classes; label ``num_classes`` is ∅.
        width: width of the vector.
        guidance_input: also take β = 1/s ∈ (0, 1] (``beta`` of :meth:`forward`; 1 when not given:
            the conditional model).

    ``forward(x (B, ...), t (B,) or scalar, labels (B,) long, beta (B,) or scalar) -> (B, width)``,
    SiLU-activated; ``x`` gives only the batch size, device and dtype of the time.
    """

    def __init__(self, num_classes: int, width: int, guidance_input: bool = False) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.labels = nn.Embedding(num_classes + 1, width)
        self.time = nn.Sequential(nn.Linear(width, width), nn.SiLU(), nn.Linear(width, width))
        self.width = width
        self.guidance_input = bool(guidance_input)
        self.strength = StrengthEmbedding(width) if self.guidance_input else None

    def forward(self, x: Tensor, t: Tensor, labels: Tensor, beta: Tensor | float | None = None) -> Tensor:
        if labels.dtype != torch.long or labels.shape != (x.shape[0],):
            raise ValueError(
                f"labels: expected a long tensor of shape ({x.shape[0]},), got {labels.dtype} {tuple(labels.shape)}"
            )
        if reads_back() and bool(((labels < 0) | (labels > self.num_classes)).any()):
            raise ValueError(f"labels: expected class indices in [0, {self.num_classes}] (the last is ∅)")
        t = batch_time(t, x.shape[0], device=x.device, dtype=time_dtype(x.dtype))
        features = timestep_embedding(t, self.width).to(self.labels.weight.dtype)  # the network's dtype
        emb = self.time(features) + self.labels(labels)
        if self.strength is not None:
            b = batch_time(1.0 if beta is None else beta, x.shape[0], device=x.device, dtype=t.dtype)
            emb = emb + self.strength(b).to(emb.dtype)
        elif beta is not None:
            raise ValueError("beta: this network was built without guidance_input, so it takes no guidance strength")
        return nn.functional.silu(emb)


def check_num_classes(net: nn.Module, num_classes: int, name: str = "net") -> None:
    """Raise unless every :class:`ConditioningEmbedding` in ``net`` was built for ``num_classes``.

    A training module gives its labels ``0 … num_classes − 1`` and ∅ = ``num_classes``: a network
    built for fewer classes reads the module's last class as its own ∅ (and fails only once ∅ is
    drawn), one built for more reads ∅ as a real class. A network without this embedding (the
    user's own) is not inspected.
    """
    built = sorted({m.num_classes for m in net.modules() if isinstance(m, ConditioningEmbedding)})
    if built and built != [num_classes]:
        raise ValueError(
            f"{name}: expected a network for num_classes={num_classes} (label {num_classes} is ∅), got "
            f"{type(net).__name__} built for num_classes={', '.join(map(str, built))}; build it with "
            f"num_classes={num_classes} or pass num_classes={built[0]} to the module"
        )
