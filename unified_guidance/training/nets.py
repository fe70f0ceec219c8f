"""The default network of a paradigm module, built from the module's hyper-parameters alone.

Built from ``(sample_shape, num_classes, width)``, which the checkpoint's
hyper-parameters carry, so ``Module.load_from_checkpoint(path)`` needs nothing else.
"""

from __future__ import annotations

from torch import nn

from ..networks import MLPNet, TinyUNet


def default_net(shape: tuple[int, ...], num_classes: int, width: int) -> nn.Module:
    """:class:`~unified_guidance.networks.TinyUNet` for images ``(C, H, H)``, :class:`~unified_guidance.networks.MLPNet`
    for vectors ``(D,)``; label ``num_classes`` is ∅."""
    if len(shape) == 3 and shape[1] == shape[2]:
        return TinyUNet(in_channels=shape[0], image_size=shape[1], num_classes=num_classes, width=width)
    if len(shape) == 1:
        return MLPNet(dim=shape[0], num_classes=num_classes, width=width)
    raise ValueError(f"sample_shape: expected (C, H, H) images or (D,) vectors, got {shape}")
