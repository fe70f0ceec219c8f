"""LightningCLI entry for the class-conditional token model of the digits.

    python recipes/train_autoregressive.py fit --config recipes/ar_digits.yaml

Configuration only; the model is :class:`unified_guidance.training.autoregressive.TokenARModule`.
"""

from lightning import LightningDataModule
from lightning.pytorch.cli import LightningCLI

from unified_guidance.training.autoregressive import TokenARModule


def main(args=None) -> LightningCLI:
    return LightningCLI(
        TokenARModule,
        LightningDataModule,
        subclass_mode_data=True,
        args=args,
        save_config_kwargs={"overwrite": True},
    )


if __name__ == "__main__":
    main()
