"""``python recipes/train_autoregressive.py fit …`` from the checkout:
the packaged recipe :mod:`unified_guidance.recipes.train_autoregressive`.

Installed, the same recipe is
``python -m unified_guidance.recipes.train_autoregressive`` or ``ug-train-autoregressive``.
"""

from __future__ import annotations

from unified_guidance.recipes.train_autoregressive import main

__all__ = ["main"]

if __name__ == "__main__":
    main()
