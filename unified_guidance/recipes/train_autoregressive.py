"""LightningCLI recipe for the class-conditional token model of the digits.

Its YAML, ``ar_digits.yaml`` (shipped in the package), is the default configuration.

    python -m unified_guidance.recipes.train_autoregressive fit  # or: ug-train-autoregressive fit
    python -m unified_guidance.recipes.train_autoregressive fit --data my_module.MyDataModule --data.batch_size=64
    python -m unified_guidance.recipes.train_autoregressive fit --ckpt_path <run>/checkpoints/last.ckpt
    python -m unified_guidance.recipes.train_autoregressive predict --ckpt_path <.../last.ckpt>
    python -m unified_guidance.recipes.train_autoregressive fit --print_config  # the whole configuration

Configuration only; the model is :class:`unified_guidance.training.autoregressive.TokenARModule`
by default, or any token module by class path (``--model
unified_guidance.training.autoregressive.TokenSequenceModule --model.vocab=… --model.length=…
--model.num_classes=…`` for one's own token sequences), the data any LightningDataModule.
"""

from __future__ import annotations

from pathlib import Path

from ..training.autoregressive import TokenModule
from ..training.recipe_cli import RecipeCLI, run_recipe

CONFIG = Path(__file__).with_name("ar_digits.yaml")


def main(args: list[str] | None = None, run: bool = True) -> RecipeCLI:
    """Run the recipe on ``args`` (``None``: the command line); ``run=False`` only builds the model and data."""
    return run_recipe(TokenModule, CONFIG, "autoregressive", args=args, run=run, any_model=True)


def console() -> None:
    """The console script ``ug-train-autoregressive``: :func:`main` on the command line, exit status 0 on success."""
    main()


if __name__ == "__main__":
    main()
