"""``python recipes/train_diffusion.py fit …`` from the checkout:
the packaged recipe :mod:`unified_guidance.recipes.train_diffusion`.

Installed, the same recipe is
``python -m unified_guidance.recipes.train_diffusion`` or ``ug-train-diffusion``.
"""

from __future__ import annotations

from unified_guidance.recipes.train_diffusion import main

__all__ = ["main"]

if __name__ == "__main__":
    main()
