"""The accelerator and strategy names Lightning knows, for argument checks outside training/.

Only ``unified_guidance/training`` imports lightning; the console script asks here.
Reads Lightning's ``AcceleratorRegistry`` and ``StrategyRegistry``.
"""

from __future__ import annotations

import torch


def accelerator_names() -> tuple[str, ...]:
    """Lightning's registered accelerators, plus its aliases ``"auto"`` and ``"gpu"``."""
    from lightning.pytorch.accelerators import AcceleratorRegistry

    return tuple(sorted({*AcceleratorRegistry.available_accelerators(), "auto", "gpu"}))


def strategy_names() -> tuple[str, ...]:
    """Lightning's registered strategies, plus ``"auto"``."""
    from lightning.pytorch.strategies import StrategyRegistry

    return ("auto", *StrategyRegistry.available_strategies())


def accelerator_available(name: str) -> bool:
    """Whether this machine has the accelerator (``cuda``/``gpu``, ``mps``); others are left to Lightning."""
    if name in ("cuda", "gpu"):
        return torch.cuda.is_available()
    if name == "mps":
        return bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
    return True
