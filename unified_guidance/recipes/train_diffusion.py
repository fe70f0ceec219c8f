"""LightningCLI recipe for diffusion training on the digits.

Its YAML, ``diffusion_digits.yaml`` (shipped in the package), is the default configuration.

    python -m unified_guidance.recipes.train_diffusion fit  # or: ug-train-diffusion fit
    python -m unified_guidance.recipes.train_diffusion fit --data my_module.MyDataModule --data.batch_size=64
    python -m unified_guidance.recipes.train_diffusion fit --ckpt_path <run>/checkpoints/last.ckpt
    python -m unified_guidance.recipes.train_diffusion predict --ckpt_path <.../last.ckpt>
    python -m unified_guidance.recipes.train_diffusion fit --print_config  # the whole configuration

Configuration only; the model is :class:`unified_guidance.training.diffusion.DiffusionModule`,
the data any LightningDataModule.
"""

from __future__ import annotations

from pathlib import Path

from ..training.diffusion import DiffusionModule
from ..training.recipe_cli import RecipeCLI, run_recipe

CONFIG = Path(__file__).with_name("diffusion_digits.yaml")


def main(args: list[str] | None = None, run: bool = True) -> RecipeCLI:
    """Run the recipe on ``args`` (``None``: the command line); ``run=False`` only builds the model and data."""
    return run_recipe(DiffusionModule, CONFIG, "diffusion", args=args, run=run)


def console() -> None:
    """The console script ``ug-train-diffusion``: :func:`main` on the command line, exit status 0 on success."""
    main()


if __name__ == "__main__":
    main()
