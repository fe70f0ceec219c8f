"""DDIM(η) and DDPM ancestral sampling of a (guided) diffusion model, with CFG++ as an option.

Each step turns the model's prediction at time t into the pair (x̂0, ε̂) and
moves to the earlier time s < t on the path x = α·x0 + σ·ε:

* DDIM (Song et al., arXiv 2010.02502):
  ``x_s = α_s x̂0 + √(σ_s² − σ_η²)·ε̂ + σ_η·z``,
  ``σ_η = η·(σ_s/σ_t)·σ_{t|s}``, ``σ_{t|s}² = σ_t² − (α_t/α_s)²σ_s²``.
* DDPM ancestral (Ho et al., arXiv 2006.11239): draw from the posterior
  ``q(x_s | x_t, x̂0) = N((α_{t|s}σ_s²/σ_t²)·x_t + (α_s σ_{t|s}²/σ_t²)·x̂0, σ_{t|s}²σ_s²/σ_t²)``
  — the same as DDIM at η = 1.
* CFG++ (Chung et al., arXiv 2406.08070; ``method="ddim_cfgpp"`` or ``"ddpm_cfgpp"``): x̂0 from
  the guided prediction, but the re-noising ε̂ from the reference branch (∅ or the negative
  condition). Where the reference forward is skipped (scale exactly 1), the step is the plain one.

The time grid is uniform in t from ``t_max`` to 0; guidance sees progress τ = 1 − t.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

import torch
from torch import Tensor
from tqdm.auto import tqdm

from ..core.conditions import Cond, Conditions, batch_size_of
from ..core.model import ConditionalModel
from ..core.path import PathCoefficients
from ..core.shapes import Precision, broadcast_like, check_batch, randn
from ..core.spaces import to_x0_eps
from ..guidance.engine import Guidance, GuidedModel
from ..guidance.spec import as_guidance
from ..guidance.stats import CostMeter, SampleOutput
from .time import time_grid

DIFFUSION_SPACES = ("eps", "x0", "v", "score")
StepFn = Callable[[Tensor, Tensor, Tensor, PathCoefficients, PathCoefficients, "Tensor | None", float], Tensor]


def _ratio_terms(c_t: PathCoefficients, c_s: PathCoefficients) -> tuple[Tensor, Tensor]:
    """α_{t|s} = α_t/α_s and σ_{t|s}² = σ_t² − α_{t|s}²σ_s² (the transition s → t), as tensors.

    The step functions keep every coefficient a tensor: reading one back (``float(α_t)``)
    would synchronise an accelerator on every step and split a ``torch.compile`` graph.
    """
    a_ts = c_t.alpha_t / c_s.alpha_t
    var_ts = (c_t.sigma_t**2 - a_ts**2 * c_s.sigma_t**2).clamp(min=0.0)
    return a_ts, var_ts


def _sigma_eta(c_t: PathCoefficients, c_s: PathCoefficients, eta: float) -> Tensor:
    _, var_ts = _ratio_terms(c_t, c_s)
    return eta * c_s.sigma_t / c_t.sigma_t * var_ts.sqrt()


def ddim_sigma(c_t: PathCoefficients, c_s: PathCoefficients, eta: float) -> float:
    """DDIM's noise level σ_η = η·(σ_s/σ_t)·σ_{t|s} of a step t → s."""
    return float(_sigma_eta(c_t, c_s, eta))


def _scalar(value: Tensor, x: Tensor) -> Tensor:
    """A coefficient as a factor for ``x`` ``(B, ...)``: a 0-d tensor, or ``(B, 1, ...)``."""
    return value if value.ndim == 0 else broadcast_like(value, x).to(x.dtype)


def ddim_step(
    x: Tensor, x0: Tensor, eps: Tensor, c_t: PathCoefficients, c_s: PathCoefficients, z: Tensor | None, eta: float
) -> Tensor:
    """``x_s = α_s x̂0 + √(σ_s² − σ_η²)·ε̂ + σ_η·z`` (arXiv 2010.02502, eq. 12); all ``(B, ...)``."""
    if eta == 0.0 or z is None:  # σ_η = 0: √(σ_s² − 0) is σ_s itself
        return _scalar(c_s.alpha_t, x) * x0 + _scalar(c_s.sigma_t, x) * eps
    sigma_eta = _sigma_eta(c_t, c_s, eta)
    direction = (c_s.sigma_t**2 - sigma_eta**2).clamp(min=0.0).sqrt()
    return _scalar(c_s.alpha_t, x) * x0 + _scalar(direction, x) * eps + _scalar(sigma_eta, x) * z


def ddpm_step(
    x: Tensor, x0: Tensor, eps: Tensor, c_t: PathCoefficients, c_s: PathCoefficients, z: Tensor | None, eta: float
) -> Tensor:
    """A draw from the posterior q(x_s | x_t, x̂0) (arXiv 2006.11239, eqs. 6–7), x_t = α_t x̂0 + σ_t ε̂.

    ``x_t`` is rebuilt from (x̂0, ε̂), so CFG++ can pass the reference ε̂; ``eta`` is unused.
    """
    a_ts, var_ts = _ratio_terms(c_t, c_s)
    s2_t, s2_s = c_t.sigma_t**2, c_s.sigma_t**2
    x_t = _scalar(c_t.alpha_t, x) * x0 + _scalar(c_t.sigma_t, x) * eps
    mean = _scalar(a_ts * s2_s / s2_t, x) * x_t + _scalar(c_s.alpha_t * var_ts / s2_t, x) * x0
    # at the last step (σ_s = 0) the standard deviation is exactly 0 and z adds nothing
    return mean if z is None else mean + _scalar((var_ts * s2_s / s2_t).sqrt(), x) * z


STEPS: dict[str, StepFn] = {"ddim": ddim_step, "ddpm": ddpm_step}
METHODS = ("ddim", "ddpm", "ddim_cfgpp", "ddpm_cfgpp")
"""The sampling methods: a step of :data:`STEPS`, and ``_cfgpp`` for CFG++ (re-noise with the reference ε̂)."""


def sample(
    model: ConditionalModel,
    guidance: Guidance | float,
    shape: Sequence[int] | None,
    cond: Cond | Conditions,
    *,
    steps: int = 50,
    method: str = "ddim",
    eta: float = 0.0,
    noise: Tensor | None = None,
    generator: torch.Generator | None = None,
    t_max: float | None = None,
    progress: bool | None = None,
) -> SampleOutput:
    """Sample ``x0`` from ``model`` under ``guidance``.

    Args:
        model: a diffusion :class:`ConditionalModel` with a path (an :class:`~.model.EpsModel`).
        guidance: a :class:`Guidance` or a CFG scale.
        shape: ``(B, ...)`` of the samples (ignored when ``noise`` is given).
        cond: the condition for ``B`` samples, or :class:`Conditions` (composition / negative).
        steps: model evaluations (≥ 1).
        method: one of :data:`METHODS`: ``"ddim"``, ``"ddpm"`` (ancestral), and their CFG++
            variants ``"ddim_cfgpp"``, ``"ddpm_cfgpp"`` (re-noise with the reference branch's ε).
        eta: DDIM's η ∈ [0, 1] (0: deterministic; 1: DDPM's variance); DDIM only.
        noise: the starting state x_{t_max} ``(B, ...)``; else drawn with ``generator`` in the dtype of
            the model's parameters. The model is called in this dtype; the state, the times and each
            step's arithmetic are kept in at least float32, and the samples returned in it again.
        generator: seeds the starting noise and the ancestral noise.
        t_max: the time to start from (default: 1, or where σ/α = 1000).
        progress: show a progress bar; default: only when stderr is a terminal.

    Returns:
        a :class:`~unified_guidance.guidance.SampleOutput`: the samples ``(B, ...)`` and their cost
        (``x, stats = sample(...)``).
    """
    step, cfgpp = _check_method(method, eta)
    _check_model(model)
    assert model.path is not None  # _check_model refused a model without one
    guidance = as_guidance(guidance)
    null = _renoise_reference(guidance) if cfgpp else 0
    grid = time_grid(model.path, steps, t_max=t_max)
    x = _initial_noise(model, shape, noise, generator)
    _check_cond(cond, x.shape[0])
    precision = Precision.of(x)  # the model runs in x's dtype; the state and the steps in ≥ float32
    x = precision.to_state(x)
    guided = GuidedModel(model, guidance)
    guided.reset()
    meter = CostMeter.of(guided)
    show = sys.stderr.isatty() if progress is None else progress
    times = grid.to(x.dtype)  # the state's dtype: a float16/bfloat16 grid would collapse
    coeffs = _grid_coefficients(model, times)
    _check_path_on_grid(times, coeffs)
    plans = guided.plan(times[:-1])  # the scale-1 skips of every step, read back once
    for i in tqdm(range(steps), disable=not show, desc=f"{method} sampling", leave=False):
        t, c_t, c_s = times[i], coeffs[i], coeffs[i + 1]
        pred = guided.evaluate(precision.to_network(x), t, cond, plan=plans[i])
        x0, eps = to_x0_eps(precision.to_state(pred.guided), model.space, x, c_t)
        renoise = pred.references[null]
        if cfgpp and renoise is not None:  # CFG++: re-noise with the reference's ε, where it ran
            eps = to_x0_eps(precision.to_state(renoise), model.space, x, c_t)[1]
        noisy = step is ddpm_step or eta > 0.0
        z = randn(x.shape, generator, x.dtype, x.device) if noisy else None
        x = step(x, x0, eps, c_t, c_s, z, eta)
    return SampleOutput(precision.to_network(x), meter.stats(nfe=steps, steps=steps))


def _check_method(method: str, eta: float) -> tuple[StepFn, bool]:
    """The step function of ``method`` and whether it is CFG++."""
    if method not in METHODS:
        raise ValueError(f"method: unknown sampler {method!r}; valid ones: {', '.join(METHODS)}")
    base = method.removesuffix("_cfgpp")
    if not 0.0 <= eta <= 1.0:
        raise ValueError(f"eta: expected a value in [0, 1], got {eta}")
    if base == "ddpm" and eta != 0.0:
        raise ValueError(f"eta: DDPM's ancestral sampler has a fixed variance; pass eta only with method='ddim', "
                         f"got method={method!r}")  # fmt: skip
    return STEPS[base], base != method


def _renoise_reference(guidance: Guidance) -> int:
    """The reference whose ε̂ CFG++ re-noises with: the only one (∅, the negative or a weaker model), or
    among several the one on ∅."""
    refs = guidance.references
    on_null = [j for j, r in enumerate(refs) if r.source is None]
    if len(refs) > 1 and len(on_null) != 1:
        raise ValueError(
            f"guidance: CFG++ re-noises with one reference's ε; with {len(refs)} references exactly one must be "
            f"on ∅ (Reference(None, ...)), got {len(on_null)}"
        )
    return on_null[0] if len(refs) > 1 else 0


def _check_model(model: ConditionalModel) -> None:
    if not isinstance(model, ConditionalModel) or model.path is None:
        raise TypeError(f"model: expected a ConditionalModel with a diffusion path, got {type(model).__name__}")
    if model.space not in DIFFUSION_SPACES:
        raise ValueError(
            f"model: expected a diffusion model predicting one of {', '.join(DIFFUSION_SPACES)}, got space "
            f"{model.space!r}"
            + ("; sample a flow model with unified_guidance.flow.sample" if model.space == "velocity" else "")
        )


def _check_path_on_grid(times: Tensor, coeffs: list[PathCoefficients]) -> None:
    """Every time the model is evaluated at needs α_t > 0 and σ_t > 0 (x0 = (x − σε)/α, ε = (x − αx0)/σ)."""
    alpha = torch.stack([c.alpha_t for c in coeffs[:-1]])
    sigma = torch.stack([c.sigma_t for c in coeffs[:-1]])
    bad = ~((alpha > 0) & (sigma > 0) & torch.isfinite(alpha) & torch.isfinite(sigma))
    if bool(bad.any()):
        i = int(bad.nonzero()[0, 0])
        a, s = float(alpha[i]) + 0.0, float(sigma[i]) + 0.0  # + 0.0: no "-0"
        raise ValueError(
            f"model: its path has α_t = {a:g}, σ_t = {s:g} at t = {float(times[i]):g}; "
            "diffusion sampling needs α_t > 0 and σ_t > 0 at every step (a zero noise schedule, or a path "
            "that reaches pure noise: pass t_max < 1)"
        )


def _check_cond(cond: Cond | Conditions, batch: int) -> None:
    """Every branch's condition must have the samples' batch size (checked before the engine stacks them)."""
    branches = [*cond.conds, cond.negative] if isinstance(cond, Conditions) else [cond]
    for c in branches:
        if c is not None and batch_size_of(c) != batch:
            raise ValueError(f"cond: expected batch size {batch} (that of the samples), got {batch_size_of(c)}")


def _grid_coefficients(model: ConditionalModel, times: Tensor) -> list[PathCoefficients]:
    """The path's coefficients at every time of the grid, in one call; the last time (t = 0) is
    set to exactly the data end (α = 1, σ = 0), so rounding in a schedule's log α cannot spoil it."""
    c = model.coefficients(times[:-1])
    per_step = zip(c.alpha_t.unbind(), c.sigma_t.unbind(), c.d_alpha_t.unbind(), c.d_sigma_t.unbind(), strict=True)
    one, zero = torch.ones_like(times[-1]), torch.zeros_like(times[-1])
    return [*(PathCoefficients(*values) for values in per_step), PathCoefficients(one, zero, zero, zero)]


def _initial_noise(
    model: ConditionalModel, shape: Sequence[int] | None, noise: Tensor | None, generator: torch.Generator | None
) -> Tensor:
    if noise is not None:
        check_batch("noise", noise)
        return noise
    if shape is None or len(shape) < 1 or any(int(d) < 1 for d in shape):
        raise ValueError(f"shape: expected (B, ...) with positive sizes, got {shape!r}")
    param = next(iter(model.parameters()), None)
    device = param.device if param is not None else torch.device("cpu")
    dtype = param.dtype if param is not None and param.is_floating_point() else torch.get_default_dtype()
    return randn(tuple(int(d) for d in shape), generator, dtype, device)
