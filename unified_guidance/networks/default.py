"""The default network for a sample shape: the one a training module builds from its hyper-parameters.

Built from ``(sample_shape, num_classes, width, arch)``, which the checkpoint's
hyper-parameters carry, so ``Module.load_from_checkpoint(path)`` needs nothing else.
"""

from __future__ import annotations

from torch import nn

from .dit import TinyDiT
from .mlp import MLPNet
from .unet import TinyUNet

ARCHS: tuple[str, ...] = ("unet", "dit", "dit_cross")
"""Image architectures: ``"unet"`` (:class:`~unified_guidance.networks.unet.TinyUNet`), ``"dit"``
(:class:`~unified_guidance.networks.dit.TinyDiT`: 2×2 patches, 4 blocks, 4 heads, token width ``width``)
and ``"dit_cross"`` (the same TinyDiT with the label read by cross-attention, ``cond_mode="cross"``: NAG)."""


def default_net(
    shape: tuple[int, ...], num_classes: int, width: int, arch: str = "unet", guidance_input: bool = False
) -> nn.Module:
    """:class:`~unified_guidance.networks.unet.TinyUNet` (``arch="unet"``) or
    :class:`~unified_guidance.networks.dit.TinyDiT` (``arch="dit"``) for images ``(C, H, W)``,
    :class:`~unified_guidance.networks.mlp.MLPNet` for vectors ``(D,)`` (``arch`` is then unused);
    label ``num_classes`` is ∅; ``guidance_input``: the network also takes β = 1/s (a guidance-free model)."""
    gi = bool(guidance_input)
    if arch not in ARCHS:
        raise ValueError(f"arch: expected one of {', '.join(ARCHS)}, got {arch!r}")
    if len(shape) == 3 and arch in ("dit", "dit_cross"):
        return TinyDiT(
            in_channels=shape[0],
            image_size=(shape[1], shape[2]),
            num_classes=num_classes,
            width=width,
            guidance_input=gi,
            cond_mode="cross" if arch == "dit_cross" else "adaln",
        )
    if len(shape) == 3 and shape[1] == shape[2]:
        return TinyUNet(
            in_channels=shape[0], image_size=shape[1], num_classes=num_classes, width=width, guidance_input=gi
        )
    if len(shape) == 1:
        return MLPNet(dim=shape[0], num_classes=num_classes, width=width, guidance_input=gi)
    raise ValueError(f"sample_shape: expected (C, H, H) images or (D,) vectors, got {shape}")
