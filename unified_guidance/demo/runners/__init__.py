"""Runners by paradigm name, imported on first use (a paradigm's code loads only when it runs).

``diffusion``, ``flow`` and ``autoregressive`` train the paradigms' LightningModules;
``diffusion_dit`` and ``flow_dit`` the first two on a TinyDiT (the attention network, for
the perturbation references) instead of a TinyUNet;
``mixture`` is the stand-in: the exact Gaussian mixture fitted to the digits (no
network), for tests and for trying the pipeline in seconds.
"""

from __future__ import annotations

from collections.abc import Callable

from .base import Runner

PARADIGMS: tuple[str, ...] = ("diffusion", "flow", "diffusion_dit", "flow_dit", "autoregressive")
"""The paradigms ``unified-guidance demo`` runs by default."""


def _diffusion() -> Runner:
    from .diffusion import DiffusionRunner

    return DiffusionRunner()


def _flow() -> Runner:
    from .flow import FlowRunner

    return FlowRunner()


def _diffusion_dit() -> Runner:
    from .diffusion import DiffusionDiTRunner

    return DiffusionDiTRunner()


def _flow_dit() -> Runner:
    from .flow import FlowDiTRunner

    return FlowDiTRunner()


def _autoregressive() -> Runner:
    from .autoregressive import ARRunner

    return ARRunner()


def _mixture() -> Runner:
    from .mixture import MixtureRunner

    return MixtureRunner()


RUNNERS: dict[str, Callable[[], Runner]] = {
    "diffusion": _diffusion,
    "flow": _flow,
    "diffusion_dit": _diffusion_dit,
    "flow_dit": _flow_dit,
    "autoregressive": _autoregressive,
    "mixture": _mixture,
}


def get_runner(name: str) -> Runner:
    """The runner of paradigm ``name``; unknown names list the valid ones."""
    if name not in RUNNERS:
        raise ValueError(f"paradigm: unknown paradigm {name!r}; valid ones: {', '.join(RUNNERS)}")
    return RUNNERS[name]()
