"""``python recipes/train_flow.py fit …`` from the checkout:
the packaged recipe :mod:`unified_guidance.recipes.train_flow`.

Installed, the same recipe is
``python -m unified_guidance.recipes.train_flow`` or ``ug-train-flow``.
"""

from __future__ import annotations

from unified_guidance.recipes.train_flow import main

__all__ = ["main"]

if __name__ == "__main__":
    main()
