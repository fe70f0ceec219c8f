"""What the TinyDiT runners (``diffusion_dit``, ``flow_dit``) share: the network's size, and the hook
where the perturbation references' sweep rows are added.

The DiT's rows are plain CFG (to compare with the TinyUNet's) plus whatever
:func:`dit_methods` returns. Its layers, for selecting what a perturbation acts on:
``blocks.i`` (block i of 4; skipping it is SLG) and ``blocks.i.attn`` (its
self-attention; identity attention is PAG, blurred queries SEG).
"""

from __future__ import annotations

from typing import Any

DIT_CONFIG: dict[str, Any] = {"arch": "dit", "width": 64, "batch_size": 64}
"""TinyDiT's entries of a runner's configuration (the cache key): token width 64 with
``training.nets.default_net``'s 2×2 patches, 4 blocks, 4 heads; batches of 64 (at a fixed
CPU budget, twice the steps at half the batch beat the TinyUNet's 128: precision at s = 3
0.56 → 0.76 for diffusion, measured)."""

PERTURBATION_METHODS: tuple[str, ...] = ()
"""Sweep methods of :data:`~unified_guidance.demo.sweep.METHODS` that use a perturbation
reference (PAG, SLG, CFG + PAG); empty until the perturbation references exist."""


def dit_methods() -> tuple[str, ...]:
    """The TinyDiT runners' sweep methods: ``"cfg"`` and the perturbation methods.

    The hook point for issue 13's demo rows: register each perturbation method in
    :data:`~unified_guidance.demo.sweep.METHODS` (a builder ``(s, params) -> Guidance``
    whose references select ``blocks.*.attn`` / ``blocks.i`` of the DiT) and list it
    in :data:`PERTURBATION_METHODS`; both DiT runners then sweep it at the high scales.
    """
    return ("cfg", *PERTURBATION_METHODS)
