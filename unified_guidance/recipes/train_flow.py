"""LightningCLI recipe for flow matching on the digits.

Its YAML, ``flow_digits.yaml`` (shipped in the package), is the default configuration.

    python -m unified_guidance.recipes.train_flow fit  # or: ug-train-flow fit
    python -m unified_guidance.recipes.train_flow fit --data my_module.MyDataModule --data.batch_size=64
    python -m unified_guidance.recipes.train_flow fit --ckpt_path <run>/checkpoints/last.ckpt
    python -m unified_guidance.recipes.train_flow predict --ckpt_path <.../last.ckpt>
    python -m unified_guidance.recipes.train_flow fit --print_config  # the whole configuration

Configuration only; the model is :class:`unified_guidance.training.flow.FlowMatchingModule`,
the data any LightningDataModule.
"""

from __future__ import annotations

from pathlib import Path

from ..training.flow import FlowMatchingModule
from ..training.recipe_cli import RecipeCLI, run_recipe

CONFIG = Path(__file__).with_name("flow_digits.yaml")


def main(args: list[str] | None = None, run: bool = True) -> RecipeCLI:
    """Run the recipe on ``args`` (``None``: the command line); ``run=False`` only builds the model and data."""
    return run_recipe(FlowMatchingModule, CONFIG, "flow", args=args, run=run)


def console() -> None:
    """The console script ``ug-train-flow``: :func:`main` on the command line, exit status 0 on success."""
    main()


if __name__ == "__main__":
    main()
