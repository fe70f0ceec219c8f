"""A two-level U-Net for small images (the 8×8 digits): ``net(x (B, C, H, W), t, labels (B,))``.

Time and label condition every residual block by FiLM (a per-channel scale and shift)
from the shared :class:`~.embedding.ConditioningEmbedding`; label ``num_classes`` is ∅.
The output convolution starts at zero, so an untrained network predicts 0.
"""

from __future__ import annotations

from torch import Tensor, nn

from .embedding import ConditioningEmbedding


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
        guidance_input: also take the guidance strength β = 1/s (``beta`` of forward; a
            guidance-free model, :class:`~.embedding.ConditioningEmbedding`).

    Shapes: ``x (B, C, H, W)``, ``t (B,)`` or scalar, ``labels (B,)`` → ``(B, C, H, W)``.
    """

    def __init__(
        self,
        in_channels: int = 1,
        image_size: int = 8,
        num_classes: int = 10,
        width: int = 64,
        guidance_input: bool = False,
    ) -> None:
        super().__init__()
        if image_size % 2:
            raise ValueError(f"image_size: expected an even size, got {image_size}")
        self.in_channels, self.image_size, self.num_classes = in_channels, image_size, num_classes
        self.embed = ConditioningEmbedding(num_classes, width, guidance_input)
        self.guidance_input = self.embed.guidance_input
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

    def forward(self, x: Tensor, t: Tensor, labels: Tensor, beta: Tensor | None = None) -> Tensor:
        expected = (self.in_channels, self.image_size, self.image_size)
        if x.ndim != 4 or tuple(x.shape[1:]) != expected:
            raise ValueError(f"x: expected shape (B, {', '.join(map(str, expected))}), got {tuple(x.shape)}")
        emb = self.embed(x, t, labels, beta)
        h0 = self.down(self.inp(x), emb)
        h = self.pool(h0)
        for block in self.mid:
            h = block(h, emb)
        h = self.up(self.unpool(h) + h0, emb)
        return self.out(h)
