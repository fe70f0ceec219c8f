"""LightningCLI entry point for the class-conditional token model of the digits (run from the repository root).

    python -m recipes.train_autoregressive fit --config recipes/ar_digits.yaml
    python -m recipes.train_autoregressive fit --config recipes/ar_digits.yaml --ckpt_path <run>/checkpoints/last.ckpt
    python -m recipes.train_autoregressive predict --config recipes/ar_digits.yaml --ckpt_path <.../last.ckpt>

Configuration only; the model is :class:`unified_guidance.training.autoregressive.TokenARModule`.
"""

from __future__ import annotations

from recipes.cli import RecipeCLI
from unified_guidance.training.autoregressive import TokenARModule
from unified_guidance.training.data import DigitsDataModule


def main(args: list[str] | None = None, run: bool = True) -> RecipeCLI:
    return RecipeCLI(TokenARModule, DigitsDataModule, args=args, run=run, label="autoregressive")


if __name__ == "__main__":
    main()
