"""Models whose predictions are known in closed form, for tests, docs and figures."""

from .mixture import GaussianMixture, two_d_mixture

__all__ = ["GaussianMixture", "two_d_mixture"]
