"""The text section's settings: CFG scales, the token mitigations and the layer-skipped amateur.

Each method maps a scale s and :class:`TextParams` to a :class:`~unified_guidance.guidance.Guidance`
for next-token logits; ``layer_skip`` adds to CFG a second reference, the same model with its
middle layers skipped (docs/perturbations.md), under the plausibility mask.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from ..autoregressive import PlausibilityMask
from ..guidance import Rescale
from ..guidance.spec import Guidance, Reference
from ..perturb import slg
from ..schedules.scale import Decay, Interval

AMATEUR_SCALES: tuple[float, ...] = (1.0, 3.0)


def middle_layers(lm: nn.Module) -> tuple[int, ...]:
    """The middle third of a causal LM's decoder layers (``config.num_hidden_layers``; at least one)."""
    n = int(getattr(lm.config, "num_hidden_layers", 0) or 0)
    if n < 1:
        raise ValueError("amateur_layers: the model's config names no decoder layers; name the layers to skip")
    return tuple(range(n // 3, max(2 * n // 3, n // 3 + 1)))


TEXT_SCALES: tuple[float, ...] = (1.0, 1.5, 2.0, 3.0, 5.0, 8.0)
TEXT_HIGH_SCALES: tuple[float, ...] = (8.0,)


@dataclass(frozen=True)
class TextParams:
    """The token mitigations' hyper-parameters.

    Args:
        alpha: α of the plausibility mask (Li et al., arXiv 2210.15097).
        interval: token-progress interval (τ_lo, τ_hi) with guidance on; the first tokens decide
            language and tone, so it starts at 0 (after it the reference rows leave the batch).
        decay_half_life: half-life in τ of ``1 + (s − 1)·2^(−τ/h)``.
        rescale_phi: φ of rescaled CFG applied to the guided log-probs (Lin et al., arXiv 2305.08891).
        amateur_layers: the decoder layers (``layers.i``) skipped in the ``layer_skip`` rows' amateur;
            ``()``: the middle third of the model's layers (:func:`middle_layers`).
        amateur_scale: w of the amateur reference, ``c + (w − 1)(c − c_amateur)`` on top of CFG
            (contrastive decoding / DoLa with a layer-skipped amateur, arXiv 2210.15097, 2309.03883).
    """

    alpha: float = 0.1
    interval: tuple[float, float] = (0.0, 0.5)
    decay_half_life: float = 0.2
    rescale_phi: float = 0.7
    amateur_layers: tuple[int, ...] = ()
    amateur_scale: float = 1.5


TEXT_METHODS: dict[str, Callable[[float, TextParams], Guidance]] = {
    "cfg": lambda s, p: Guidance(scale=s),
    "plausibility": lambda s, p: Guidance(scale=s, post=(PlausibilityMask(p.alpha),)),
    "interval": lambda s, p: Guidance(scale=Interval(s, lo=p.interval[0], hi=p.interval[1])),
    "decay": lambda s, p: Guidance(scale=Decay(s, half_life=p.decay_half_life)),
    "rescale": lambda s, p: Guidance(scale=s, post=(Rescale(phi=p.rescale_phi, space=None),)),
    "layer_skip": lambda s, p: Guidance(
        scale=s,
        also=[Reference(slg(*(f"layers.{i}" for i in p.amateur_layers)), p.amateur_scale)],
        post=(PlausibilityMask(p.alpha),),
    ),
}
"""Method name → guidance at scale s, for next-token logits."""
