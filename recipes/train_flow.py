"""LightningCLI entry point for flow matching on the digits (run from the repository root).

    python -m recipes.train_flow fit --config recipes/flow_digits.yaml
    python -m recipes.train_flow fit --config recipes/flow_digits.yaml --ckpt_path <run>/checkpoints/last.ckpt
    python -m recipes.train_flow predict --config recipes/flow_digits.yaml --ckpt_path <.../last.ckpt>

Configuration only; the model is :class:`unified_guidance.training.flow.FlowMatchingModule`.
"""

from __future__ import annotations

from recipes.cli import RecipeCLI
from unified_guidance.training.data import DigitsDataModule
from unified_guidance.training.flow import FlowMatchingModule


def main(args: list[str] | None = None, run: bool = True) -> RecipeCLI:
    return RecipeCLI(FlowMatchingModule, DigitsDataModule, args=args, run=run, label="flow")


if __name__ == "__main__":
    main()
