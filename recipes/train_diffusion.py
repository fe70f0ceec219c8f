"""LightningCLI entry point for diffusion training.

python -m recipes.train_diffusion fit --config recipes/diffusion_digits.yaml
python -m recipes.train_diffusion fit --config recipes/diffusion_digits.yaml --ckpt_path <.../last.ckpt>  # resume
"""

from __future__ import annotations

from lightning.pytorch.cli import LightningCLI

from unified_guidance.training.data import DigitsDataModule
from unified_guidance.training.diffusion import DiffusionModule


def main(args: list[str] | None = None, run: bool = True) -> LightningCLI:
    return LightningCLI(DiffusionModule, DigitsDataModule, args=args, run=run, save_config_kwargs={"overwrite": True})


if __name__ == "__main__":
    main()
