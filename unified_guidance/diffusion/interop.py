"""diffusers interop (optional extra ``diffusers``): wrap UNets, drive diffusers schedulers with guided predictions.

A diffusers user keeps their UNet and scheduler and gains the engine's rules and
schedules: :func:`wrap_unet` turns ``UNet2DModel`` (class labels, learned null
label) or ``UNet2DConditionModel`` (embeddings, explicit null embedding) into an
:class:`~.model.EpsModel` on the scheduler's own ᾱ table, and
:func:`sample_with_scheduler` runs the scheduler's loop with the guided
prediction in place of the pipeline's ``uncond + s·(cond − uncond)`` line.

Time: the scheduler's timestep k (DDIM: integers; Euler: possibly fractional)
is continuous time t = (k + 1)/N, progress τ = 1 − t, so scale schedules and
intervals mean the same here as with our own samplers.

Noise level: schedulers that keep a σ per step (Euler, Heun, DPM-Solver …, with
Karras or default spacing) convert predictions with that σ, which between table
entries is not the ᾱ table's log-linear interpolation at k (and, with Karras σ and
integer timesteps, not the table at k at all). :func:`sample_with_scheduler`
therefore converts between ε, x0 and v with the scheduler's own σ at each step:
α = 1/√(1 + σ²), σ_VP = σ·α, exactly what the scheduler's step assumes.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from ..compat import diffusers as compat
from ..core.conditions import Cond, Conditions, NullSpec, check_labels
from ..core.model import ConditionalModel
from ..core.numbers import check_int
from ..core.path import Path, PathCoefficients
from ..core.shapes import check_finite, randn
from ..guidance.engine import Guidance, GuidedModel
from ..guidance.spec import as_guidance
from ..guidance.stats import CostMeter, SampleOutput
from .model import EpsModel
from .time import AlphasCumprodPath

PREDICTION_TYPES = {"epsilon": "eps", "sample": "x0", "v_prediction": "v"}
_SCHEDULER_API = ("set_timesteps", "step", "scale_model_input", "timesteps", "alphas_cumprod", "config")


class _UNetCall(nn.Module):
    """``(x, t·N, cond) -> prediction``: the UNet at timestep k = t·N − 1, condition by keyword."""

    def __init__(self, unet: nn.Module, cond_kwarg: str) -> None:
        super().__init__()
        self.unet, self.cond_kwarg = unet, cond_kwarg

    def forward(self, x: Tensor, t_scaled: Tensor, cond: Cond) -> Tensor:
        check_unet_cond("cond", cond, self.unet, self.cond_kwarg, x.shape[0])
        k = (t_scaled - 1.0).to(torch.float32)
        k = torch.where((k - k.round()).abs() < 1e-4, k.round(), k)  # (k + 1)/N·N − 1 is k up to rounding
        return self.unet(x, k, **{self.cond_kwarg: cond}).sample


def check_unet_cond(name: str, cond: Any, unet: nn.Module, kwarg: str, rows: int | None) -> None:
    """A UNet's condition (``rows`` rows) or ∅ (``rows=None``: one sample), checked against its config:
    class labels in ``[0, num_class_embeds)``; text embeddings ``(L, cross_attention_dim)`` per sample."""
    kind = type(unet).__name__
    if kwarg == "class_labels":
        classes = compat.model_config(unet, "num_class_embeds")
        if rows is None:
            check_int(name, cond, lo=0)
            if classes is not None and cond >= classes:
                raise ValueError(f"{name}: expected a label in [0, {classes}) (num_class_embeds of {kind}), got {cond}")
        else:
            check_labels(name, cond, rows, None if classes is None else classes - 1)
        return
    width = compat.model_config(unet, "cross_attention_dim")
    width = width[0] if isinstance(width, (tuple, list)) and len(set(width)) == 1 else width
    if not isinstance(cond, Tensor) or not cond.is_floating_point() or cond.ndim != (2 if rows is None else 3):
        got = f"{cond.dtype} tensor of shape {tuple(cond.shape)}" if isinstance(cond, Tensor) else type(cond).__name__
        layout = "(B, L, D) embeddings" if rows is not None else "one sample's (L, D) embedding, no batch dimension"
        raise ValueError(f"{name}: expected {layout} for {kind}, got {got}")
    if (rows is not None and cond.shape[0] != rows) or (isinstance(width, int) and cond.shape[-1] != width):
        expected = f"({rows}, L, {width})" if rows is not None else f"(L, {width})"
        raise ValueError(f"{name}: expected {expected} (D = cross_attention_dim of {kind}), got {tuple(cond.shape)}")


def _check_class_embedding(unet: nn.Module, num_classes: int | None) -> None:
    """A UNet2DModel takes labels only through a class embedding; labels up to ``num_classes`` (∅ included)."""
    classes = compat.model_config(unet, "num_class_embeds")
    if classes is None and compat.model_config(unet, "class_embed_type") is None:
        raise ValueError(
            f"unet: {type(unet).__name__} has no class embedding (num_class_embeds and class_embed_type are None), "
            "so it would ignore every class label; build it with num_class_embeds = classes + 1 (for ∅)"
        )
    if num_classes is not None and classes is not None and check_int("num_classes", num_classes, lo=1) >= classes:
        raise ValueError(
            f"num_classes: expected fewer than the UNet's num_class_embeds = {classes} (∅ takes one), got {num_classes}"
        )


def check_scheduler(scheduler: Any) -> None:
    """A scheduler can be driven if it is a VP (ᾱ-table) diffusers scheduler with the usual loop API."""
    missing = [name for name in _SCHEDULER_API if not hasattr(scheduler, name)]
    if missing:
        raise ValueError(
            f"scheduler: expected a diffusers scheduler on an alphas_cumprod table (DDIM, DDPM, Euler, "
            f"DPM-Solver++ …), got {type(scheduler).__name__} without {', '.join(missing)}"
        )
    kind = compat.config_value(scheduler, "prediction_type", "epsilon")
    if kind not in PREDICTION_TYPES:
        raise ValueError(f"scheduler: prediction_type {kind!r} is not one of {', '.join(PREDICTION_TYPES)}")


def wrap_unet(
    unet: nn.Module, scheduler: Any, *, null_cond: NullSpec | None = None, num_classes: int | None = None
) -> EpsModel:
    """A diffusers UNet as a :class:`~.model.EpsModel` on ``scheduler``'s noise schedule.

    Args:
        unet: ``UNet2DModel`` (condition: class labels ``(B,)``; ∅: a label index, e.g.
            ``num_class_embeds − 1``) or ``UNet2DConditionModel`` (condition:
            ``encoder_hidden_states (B, L, D)``; ∅: one ``(L, D)`` tensor).
        scheduler: the diffusers scheduler it was trained with (its ᾱ table and prediction type).
        null_cond: ∅ as above.
        num_classes: for labels, the number of real classes (labels in ``[0, num_classes]``).
    """
    from diffusers import UNet2DConditionModel, UNet2DModel

    if isinstance(unet, UNet2DConditionModel):
        kwarg = "encoder_hidden_states"
    elif isinstance(unet, UNet2DModel):
        kwarg = "class_labels"
    else:
        raise TypeError(f"unet: expected a diffusers UNet2DModel or UNet2DConditionModel, got {type(unet).__name__}")
    check_scheduler(scheduler)
    if kwarg == "class_labels":
        _check_class_embedding(unet, num_classes)
    if null_cond is not None:
        check_unet_cond("null_cond", null_cond, unet, kwarg, None)
    path = AlphasCumprodPath(scheduler.alphas_cumprod)
    config: Any = unet.config  # diffusers' frozen dict of the UNet's settings, read by attribute
    size = config.sample_size
    size = (size, size) if isinstance(size, int) else tuple(size)
    return EpsModel(
        _UNetCall(unet, kwarg),
        path=path,
        prediction=PREDICTION_TYPES[scheduler.config.get("prediction_type", "epsilon")],
        null_cond=null_cond,
        num_classes=num_classes,
        sample_shape=(config.in_channels, *size),
        time_scale=float(path.num_train_timesteps),
    )


def sample_with_scheduler(
    model: EpsModel,
    guidance: Guidance | float,
    scheduler: Any,
    shape: Sequence[int] | None,
    cond: Cond | Conditions,
    *,
    steps: int = 50,
    noise: Tensor | None = None,
    generator: torch.Generator | None = None,
    progress: bool | None = None,
) -> SampleOutput:
    """Run ``scheduler``'s sampling loop with the guided prediction of ``model``.

    Args:
        model: from :func:`wrap_unet` (or any :class:`~.model.EpsModel` on the scheduler's ᾱ table).
        guidance: a :class:`Guidance` or a CFG scale.
        scheduler: a diffusers scheduler (DDIM, Euler, DPM-Solver++ multistep …); it is
            reset with ``set_timesteps(steps)``.
        shape: ``(B, C, H, W)`` (ignored when ``noise`` is given); ``cond``: the condition.
        noise: unit Gaussian noise; it is scaled by the scheduler's ``init_noise_sigma``.
        generator: seeds the noise and the scheduler's stochastic steps.
        progress: progress bar; default only when stderr is a terminal.

    Returns:
        a :class:`~unified_guidance.guidance.SampleOutput`: the samples ``(B, C, H, W)`` and their
        cost (``nfe``: the loop's evaluations; ``steps``: ``steps``).
    """
    check_scheduler(scheduler)
    n_train = compat.num_train_timesteps(scheduler)
    if not isinstance(model.path, AlphasCumprodPath) or model.path.num_train_timesteps != n_train:
        raise ValueError(f"model: expected a model on the scheduler's {n_train}-step ᾱ table (use wrap_unet)")
    check_int("steps", steps, lo=1)
    scheduler.set_timesteps(steps)
    times = (scheduler.timesteps.to(torch.float64) + 1.0) / n_train
    on_steps = _OnSchedulerSigmas(model, StepSigmaPath(model.path, times, compat.ve_step_sigmas(scheduler)))
    guided = GuidedModel(on_steps, as_guidance(guidance))
    guided.reset()
    meter = CostMeter.of(guided)
    if noise is None:
        if shape is None:
            raise ValueError("shape: expected (B, C, H, W) when no noise is given, got None")
        param = next(model.parameters())
        noise = randn(shape, generator, param.dtype, param.device)
    if not isinstance(noise, Tensor) or not noise.is_floating_point():
        raise ValueError(f"noise: expected a floating-point (B, C, H, W) tensor, got {type(noise).__name__}")
    check_finite("noise", noise)
    x = noise * scheduler.init_noise_sigma
    step = compat.stepper(scheduler, generator)
    show = sys.stderr.isatty() if progress is None else progress
    for k, t in tqdm(
        zip(scheduler.timesteps, times, strict=True),
        total=len(times),
        disable=not show,
        desc=type(scheduler).__name__,
        leave=False,
    ):
        pred = guided(scheduler.scale_model_input(x, k), t.to(x.device), cond)
        x = step(pred, k, x)
    return SampleOutput(x, meter.stats(nfe=len(times), steps=steps))


class StepSigmaPath(Path):
    """``base`` with α_t, σ_t replaced at the scheduler's step times by the scheduler's own σ.

    At ``times[i]``: α = 1/√(1 + σᵢ²), σ_VP = σᵢ·α (diffusers' VE σ on the VP path), with
    √(1 + σᵢ²) rounded in σ's dtype as the scheduler rounds it when it scales the model input;
    elsewhere, and for the time derivatives, ``base``.
    """

    def __init__(self, base: Path, times: Tensor, sigmas: Tensor | None) -> None:
        self.base = base
        self.times = times.to(torch.float64)
        if sigmas is None:
            self.alphas = self.sigmas = None
        else:
            self.alphas = 1.0 / ((sigmas**2 + 1) ** 0.5).to(torch.float64)
            self.sigmas = sigmas.to(torch.float64) * self.alphas

    def coefficients(self, t: Tensor) -> PathCoefficients:
        c = self.base.coefficients(t)
        if self.alphas is None or self.sigmas is None:
            return c
        t = torch.as_tensor(t)
        gap = (t.to(torch.float64)[..., None] - self.times.to(t.device)).abs()
        nearest, index = gap.min(-1)
        on_step = nearest <= 1e-12
        alpha = torch.where(on_step, self.alphas.to(t.device)[index], c.alpha_t.to(torch.float64))
        sigma = torch.where(on_step, self.sigmas.to(t.device)[index], c.sigma_t.to(torch.float64))
        dtype = c.alpha_t.dtype
        return PathCoefficients(alpha.to(dtype), sigma.to(dtype), c.d_alpha_t, c.d_sigma_t)

    def progress(self, t: Tensor) -> Tensor:
        return self.base.progress(t)

    def time(self, tau: Tensor) -> Tensor:
        return self.base.time(tau)


class _OnSchedulerSigmas(ConditionalModel):
    """``model`` itself (its forwards counted on it), converted on a :class:`StepSigmaPath`."""

    def __init__(self, model: EpsModel, path: StepSigmaPath) -> None:
        super().__init__(space=model.space, path=path, null_cond=model.null_spec)
        self.inner = model

    def predict(self, x: Tensor, t: Tensor, cond: Cond) -> Tensor:
        return self.inner(x, t, cond)
