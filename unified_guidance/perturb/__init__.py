"""References that perturb the model itself: PAG, SEG, SLG/STG, a layer-skipped LM; and NAG,
which acts inside the conditional forward (:func:`nag`; its hooks: :func:`.nag_hooks.normalized`).

A :class:`Perturbation` is data (which modules, what is done to them);
:func:`perturbed` installs it for one forward on some :class:`Rows` of the batch and
always removes it. :class:`~unified_guidance.guidance.Reference` puts one into a
:class:`~unified_guidance.guidance.Guidance` as a reference branch.
"""

from .hooks import Rows, perturbed
from .spec import Perturbation, nag, pag, seg, slg

__all__ = [
    "Perturbation",
    "Rows",
    "nag",
    "pag",
    "perturbed",
    "seg",
    "slg",
]
