"""LightningCLI entry point for flow matching.

python recipes/train_flow.py fit --config recipes/flow_digits.yaml
"""

from lightning.pytorch.cli import LightningCLI

from unified_guidance.training.data import DigitsDataModule
from unified_guidance.training.flow import FlowMatchingModule


def main() -> None:
    LightningCLI(FlowMatchingModule, DigitsDataModule, save_config_kwargs={"overwrite": True})


if __name__ == "__main__":
    main()
