"""What the TinyDiT runners (``diffusion_dit``, ``flow_dit``) share: the network's size and the
perturbation references' sweep rows.

The DiT's rows are plain CFG (to compare with the TinyUNet's) plus the perturbation
references of :func:`dit_methods` (PAG, SLG, CFG + PAG) at :data:`PERTURBATION_SCALES`.
Its layers, for selecting what a perturbation acts on:
``blocks.i`` (block i of 4; skipping it is SLG) and ``blocks.i.attn`` (its
self-attention; identity attention is PAG, blurred queries SEG).
"""

from __future__ import annotations

from typing import Any

DIT_CONFIG: dict[str, Any] = {"arch": "dit", "width": 64, "batch_size": 64}
"""TinyDiT's entries of a runner's configuration (the cache key): token width 64 with
``networks.default_net``'s 2×2 patches, 4 blocks, 4 heads; batches of 64 (at a fixed
CPU budget, twice the steps at half the batch beat the TinyUNet's 128: precision at s = 3
0.56 → 0.76 for diffusion, measured)."""

PERTURBATION_METHODS: tuple[str, ...] = ("pag", "slg", "cfg_pag")
"""Sweep methods of :data:`~unified_guidance.demo.sweep.METHODS` with a perturbation reference:
PAG on ``blocks.2.attn``, SLG skipping ``blocks.2``, CFG + PAG (s_p = 1); the modules are
:class:`~unified_guidance.demo.sweep.MitigationParams`' ``pag_modules`` / ``slg_modules``."""

PERTURBATION_SCALES: dict[str, tuple[float, ...]] = {m: (2.0, 3.0, 5.0) for m in PERTURBATION_METHODS}
"""Where the perturbation rows are swept: the moderate scales, beside CFG's rows at the same s
(at the mitigations' s = 8 and 15 a PAG/SLG reference only adds contrast)."""


def dit_methods() -> tuple[str, ...]:
    """The TinyDiT runners' sweep methods: ``"cfg"`` and :data:`PERTURBATION_METHODS`.

    To add a perturbation row: register its builder ``(s, params) -> Guidance`` in
    :data:`~unified_guidance.demo.sweep.METHODS` (references selecting ``blocks.*.attn`` /
    ``blocks.i`` of the DiT) and list it here and in :data:`PERTURBATION_SCALES`.
    """
    return ("cfg", *PERTURBATION_METHODS)
