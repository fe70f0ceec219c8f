"""The bundled data: real digits that ship with scikit-learn, and toy mixtures with exact scores.

* :mod:`.digits`: scikit-learn's 8×8 handwritten digits in [−1, 1] with a fixed
  train/validation split (:func:`~.digits.load_digits_split`), and their 17 grey levels;
* :mod:`.mixture`: an exact class-conditional Gaussian mixture
  (:class:`~.mixture.GaussianMixture`, a :class:`~unified_guidance.core.ConditionalModel`
  with no training) and the 2-D mixture of the docs, tests and demo (:func:`~.mixture.two_d_mixture`).

Nothing is downloaded. This package imports only torch, scikit-learn (on use) and
:mod:`unified_guidance.core`.
"""

from .digits import load_digits_split
from .mixture import GaussianMixture, two_d_mixture

__all__ = [
    "GaussianMixture",
    "load_digits_split",
    "two_d_mixture",
]
