"""LightningCLI entry point for diffusion training on the digits (run from the repository root).

    python -m recipes.train_diffusion fit --config recipes/diffusion_digits.yaml
    python -m recipes.train_diffusion fit --config recipes/diffusion_digits.yaml --ckpt_path <run>/checkpoints/last.ckpt
    python -m recipes.train_diffusion predict --config recipes/diffusion_digits.yaml --ckpt_path <.../last.ckpt>

Configuration only; the model is :class:`unified_guidance.training.diffusion.DiffusionModule`.
"""

from __future__ import annotations

from recipes.cli import RecipeCLI
from unified_guidance.training.data import DigitsDataModule
from unified_guidance.training.diffusion import DiffusionModule


def main(args: list[str] | None = None, run: bool = True) -> RecipeCLI:
    return RecipeCLI(DiffusionModule, DigitsDataModule, args=args, run=run, label="diffusion")


if __name__ == "__main__":
    main()
