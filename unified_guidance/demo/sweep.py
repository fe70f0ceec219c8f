"""What the demo sweeps: plain CFG over scales, and the mitigations at high scales.

A setting is a (method, scale) pair; :func:`guidance_for` turns it into a
:class:`~unified_guidance.guidance.Guidance`, and :func:`sampler_options` into the keywords of the
module's ``sample`` where the method is a solver-level rule (CFG++, Rectified-CFG++: a ``method``
name of the paradigm's public sampler). Methods are a plain dict; each
paradigm's runner says which apply to it (x0-space post-processes need a
continuous prediction; a token model has none).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..autoregressive.mixing import PlausibilityMask
from ..guidance import APG, FDG, TCFG, Adaptive, CFGZeroStar, DynamicThreshold, MamboG, Rescale
from ..guidance.engine import Guidance
from ..guidance.spec import Reference
from ..perturb import pag, slg
from ..schedules.scale import Beta, Decay, Interval
from ..training.predict import WorkItem

CFG_SCALES: tuple[float, ...] = (0.0, 1.0, 1.5, 2.0, 3.0, 5.0, 8.0, 15.0)
"""Plain CFG scales s (s = 0: unconditional; s = 1: conditional)."""

HIGH_SCALES: tuple[float, ...] = (8.0, 15.0)
"""Where the mitigations are compared with plain CFG."""


@dataclass(frozen=True)
class MitigationParams:
    """Hyper-parameters of the mitigations (a runner may override them for its paradigm).

    Args:
        rescale_phi: φ of rescaled CFG (Lin et al., arXiv 2305.08891).
        threshold_percentile: p of dynamic thresholding (Saharia et al., arXiv 2205.11487).
        interval: progress interval (τ_lo, τ_hi) where guidance is on (Kynkäänniemi et al., arXiv 2404.07724).
        decay_half_life: half-life in τ of the decaying scale ``1 + (s − 1)·2^(−τ/h)``.
        apg_eta, apg_norm_threshold, apg_momentum: APG's η, r and β (Sadat et al., arXiv 2410.02416).
        zero_init: progress before which CFG-Zero* outputs zero (Fan et al., arXiv 2503.18886).
        plausibility_alpha: α of the token plausibility mask (Li et al., arXiv 2210.15097).
        mambo_alpha: α of MAMBO-G (arXiv 2508.03442).
        fdg_ratios: FDG's band scales 1 + (s − 1)·ratio, finest band first (arXiv 2506.19713).
        adaptive_gamma: cosine at which adaptive guidance stops the reference (arXiv 2312.12487).
        beta_shape: (a, b) of the β schedule (arXiv 2502.10574).
        rectified_gamma: exponent γ of Rectified-CFG++'s correction weight τ^γ (arXiv 2510.07631).
        pag_modules: the self-attention modules PAG perturbs (arXiv 2403.17377; TinyDiT's paths).
        slg_modules: the blocks SLG skips (arXiv 2411.18664).
        cfg_pag_scale: PAG's additive scale s_p beside CFG in ``cfg_pag`` (reference weight 1 + s_p).
    """

    rescale_phi: float = 0.7
    threshold_percentile: float = 0.95
    interval: tuple[float, float] = (0.2, 0.7)
    decay_half_life: float = 0.2
    apg_eta: float = 0.0
    apg_norm_threshold: float | None = 4.0
    apg_momentum: float = -0.5
    zero_init: float = 0.0
    plausibility_alpha: float = 0.1
    mambo_alpha: float = 2.0
    fdg_ratios: tuple[float, ...] = (1.0, 0.25)
    adaptive_gamma: float = 0.99
    beta_shape: tuple[float, float] = (2.0, 2.0)
    rectified_gamma: float = 1.0
    pag_modules: tuple[str, ...] = ("blocks.2.attn",)
    slg_modules: tuple[str, ...] = ("blocks.2",)
    cfg_pag_scale: float = 1.0


def _cfg(s: float, p: MitigationParams) -> Guidance:
    return Guidance(scale=s)


def _rescale(s: float, p: MitigationParams) -> Guidance:
    return Guidance(scale=s, post=(Rescale(phi=p.rescale_phi),))


def _threshold(s: float, p: MitigationParams) -> Guidance:
    return Guidance(scale=s, post=(DynamicThreshold(percentile=p.threshold_percentile),))


def _interval(s: float, p: MitigationParams) -> Guidance:
    return Guidance(scale=Interval(s, lo=p.interval[0], hi=p.interval[1]))


def _decay(s: float, p: MitigationParams) -> Guidance:
    return Guidance(scale=Decay(s, half_life=p.decay_half_life))


def _apg(s: float, p: MitigationParams) -> Guidance:
    rule = APG(eta=p.apg_eta, norm_threshold=p.apg_norm_threshold, momentum=p.apg_momentum)
    return Guidance(rule=rule, scale=s)


def _plausibility(s: float, p: MitigationParams) -> Guidance:
    return Guidance(scale=s, post=(PlausibilityMask(p.plausibility_alpha),))


def _cfg_zero_star(s: float, p: MitigationParams) -> Guidance:
    return Guidance(rule=CFGZeroStar(zero_init=p.zero_init), scale=s)


def _tcfg(s: float, p: MitigationParams) -> Guidance:
    return Guidance(rule=TCFG(), scale=s)


def _mambo_g(s: float, p: MitigationParams) -> Guidance:
    return Guidance(rule=MamboG(alpha=p.mambo_alpha), scale=s)


def _fdg(s: float, p: MitigationParams) -> Guidance:
    return Guidance(rule=FDG(ratios=p.fdg_ratios), scale=s)


def _adaptive(s: float, p: MitigationParams) -> Guidance:
    return Guidance(rule=Adaptive(gamma=p.adaptive_gamma), scale=s)


def _beta(s: float, p: MitigationParams) -> Guidance:
    return Guidance(scale=Beta(s, a=p.beta_shape[0], b=p.beta_shape[1]))


def _pag(s: float, p: MitigationParams) -> Guidance:
    return Guidance(scale=s, reference=pag(*p.pag_modules))  # c + (s − 1)(c − c_pert)


def _slg(s: float, p: MitigationParams) -> Guidance:
    return Guidance(scale=s, reference=slg(*p.slg_modules))


def _cfg_pag(s: float, p: MitigationParams) -> Guidance:
    # u + s(c − u) + s_p(c − c_pert)
    return Guidance(scale=s, also=[Reference(pag(*p.pag_modules), 1.0 + p.cfg_pag_scale)])


METHODS: dict[str, Callable[[float, MitigationParams], Guidance]] = {
    "cfg": _cfg,
    "rescale": _rescale,
    "dynamic_threshold": _threshold,
    "interval": _interval,
    "decay": _decay,
    "apg": _apg,
    "cfg_zero_star": _cfg_zero_star,
    "plausibility": _plausibility,
    "tcfg": _tcfg,
    "mambo_g": _mambo_g,
    "fdg": _fdg,
    "adaptive": _adaptive,
    "beta": _beta,
    "cfgpp": _cfg,  # plain CFG under the CFG++ sampler (SAMPLERS)
    "rectified_cfgpp": _cfg,  # plain CFG under Rectified-CFG++ steps (SAMPLERS)
    "pag": _pag,
    "slg": _slg,
    "cfg_pag": _cfg_pag,
    "gft": _cfg,  # plain CFG on a guidance-free model: one forward at β = 1/s (demo.guidance_free)
    "cfg_matched": _cfg,  # plain CFG at half the steps: the forward rows of "gft" (demo.guidance_free)
}
"""Method name → guidance at scale s. ``"cfg"`` is plain CFG; the rest are mitigations,
``pag``, ``slg``, ``cfg_pag`` the perturbation references (they need a network with the
modules of ``pag_modules`` / ``slg_modules``: the TinyDiT runners), and ``gft`` / ``cfg_matched``
the guidance-free rows and their equal-cost CFG baseline (:mod:`~unified_guidance.demo.guidance_free`)."""


SAMPLERS: dict[str, Callable[[MitigationParams], dict[str, Any]]] = {
    "cfgpp": lambda p: {"method": "ddim_cfgpp"},  # CFG++ (arXiv 2406.08070): diffusion.sample's method
    "rectified_cfgpp": lambda p: {"method": "rectified_cfgpp", "gamma": p.rectified_gamma},  # flow.sample's
}
"""Method name → keyword arguments of the module's ``sample`` for the methods that are solver-level rules
(they change the integration step, not the guided prediction); the rest sample with the module's default."""


def sampler_options(method: str, params: MitigationParams | None = None) -> tuple[tuple[str, Any], ...]:
    """The sampler keywords of a setting (``()`` for the methods that only change the guidance)."""
    options = SAMPLERS.get(method)
    return () if options is None else tuple(options(params or MitigationParams()).items())


def guidance_for(method: str, scale: float, params: MitigationParams | None = None) -> Guidance:
    """The :class:`Guidance` of a setting; unknown methods list the valid ones."""
    if method not in METHODS:
        raise ValueError(f"method: unknown method {method!r}; valid methods: {', '.join(METHODS)}")
    return METHODS[method](float(scale), params or MitigationParams())


@dataclass(frozen=True)
class Setting:
    """One point of the sweep: a method at a scale."""

    method: str
    scale: float

    @property
    def label(self) -> str:
        return f"{self.method} s={self.scale:g}"


def settings(
    methods: Sequence[str],
    scales: Sequence[float] = CFG_SCALES,
    high: Sequence[float] = HIGH_SCALES,
    method_scales: Mapping[str, Sequence[float]] | None = None,
) -> list[Setting]:
    """Plain CFG at every scale, then each other method in ``methods`` at the high scales
    (or at its own scales in ``method_scales``)."""
    for m in methods:
        if m not in METHODS:
            raise ValueError(f"methods: unknown method {m!r}; valid methods: {', '.join(METHODS)}")
    own = method_scales or {}
    out = [Setting("cfg", float(s)) for s in scales]
    out += [Setting(m, float(s)) for m in methods if m != "cfg" for s in own.get(m, high)]
    return out


def class_seed(base_seed: int, label: int) -> int:
    """The noise seed of a class: shared by every setting, so settings differ only in guidance."""
    return zlib.crc32(f"{base_seed}/{label}".encode()) & 0x7FFFFFFF


def work_items(
    paradigm: str,
    sweep: Sequence[Setting],
    *,
    num_classes: int,
    samples_per_class: int,
    seed: int,
    params: MitigationParams | None = None,
    options: Mapping[str, tuple[tuple[str, Any], ...]] | None = None,
) -> list[WorkItem]:
    """One :class:`WorkItem` per (setting, class), in a fixed order.

    ``options``: sampler keywords by method, in place of :func:`sampler_options` (e.g. the step count of
    ``cfg_matched``). Keys end in a checksum of the guidance's description (and the sampler's options), so
    samples saved under other mitigation hyper-parameters are never taken for these.
    """
    items: list[WorkItem] = []
    for setting in sweep:
        g = guidance_for(setting.method, setting.scale, params)
        options_ = (options or {}).get(setting.method) or sampler_options(setting.method, params)
        fingerprint = f"{zlib.crc32((repr(g) + (repr(options_) if options_ else '')).encode()):08x}"
        for label in range(num_classes):
            key = f"{paradigm}/{setting.method}/{setting.scale:g}/{label}/{fingerprint}"
            seed_ = class_seed(seed, label)
            items.append(WorkItem(len(items), key, label, samples_per_class, seed_, g, options_))
    return items
