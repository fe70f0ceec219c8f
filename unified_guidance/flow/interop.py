"""diffusers flow-matching transformers (SD3, Flux, Wan) as velocity models (optional extra ``diffusers``).

    model = ug.flow.wrap_transformer(transformer, scheduler, null_cond=empty_prompt)
    x, stats = ug.flow.sample_with_scheduler(model, 4.0, scheduler, None, cond, steps=28, noise=latents)
    x, stats = ug.flow.sample(model, ug.Guidance(scale=Interval(4.0, lo=0.2, hi=0.8)), latents, cond)

Time: diffusers' flow transformers predict ``v = ε − x0`` on the rectified path
``x = (1 − σ)·x0 + σ·ε`` (SD3, Esser et al., arXiv 2403.03206; Flux), noise at σ = 1, so
the model lives on :class:`~unified_guidance.schedules.RectifiedFlowPath` with time t = σ
and progress τ = 1 − σ. A pipeline's shifted schedule (``shift``, resolution-dependent
``mu``) only moves the σ grid; τ stays 1 − σ, so a scale schedule means the same for
every shift and step count. The transformer sees the timestep the pipelines give it:
``σ·N`` (SD3 and Wan families) or ``σ·N/1000`` (Flux family, which multiplies by 1000 itself),
computed from float32 σ as the schedulers do.

Condition: a dict of the transformer's keyword inputs, batched along dim 0 (SD3:
``encoder_hidden_states (B, L, D)``, ``pooled_projections (B, P)``; Flux adds
``guidance (B,)``, its distilled guidance embedding, which stays a model input).
Inputs shared by every row (Flux's ``txt_ids (L, 3)``, ``img_ids (S, 3)``,
``joint_attention_kwargs``) go in ``inputs=``. ∅ is one sample's condition (no batch
dimension), e.g. the empty or negative prompt's embeddings ``[0]``; a negative prompt
per row is ``Conditions.single(cond, negative=...)`` — Flux's "true CFG" is then our
guidance, ``true_cfg_scale`` = s.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from ..compat import diffusers as compat
from ..core.conditions import Cond, Conditions
from ..core.numbers import check_int
from ..core.shapes import randn
from ..guidance.engine import Guidance, GuidedModel
from ..guidance.spec import as_guidance
from ..guidance.stats import CostMeter, SampleOutput
from ..schedules.noise import RectifiedFlowPath
from .arguments import check_state
from .inputs import check_condition, check_latents, check_present, null_spec
from .model import VelocityModel


@dataclass(frozen=True)
class TransformerFamily:
    """How a family of diffusers pipelines calls its transformer and sets its σ schedule.

    Attributes:
        timestep_unit: ``"train"``: the transformer takes σ·N (SD3, Wan); ``"unit"``: σ·N/1000 (Flux).
        seq_len: the image sequence length of a latent shape, for the resolution-dependent shift μ.
        mu: when the pipeline passes μ: ``"dynamic"`` (with ``use_dynamic_shifting``, SD3),
            ``"always"`` (Flux) or ``"never"`` (Wan).
        linear_sigmas: the pipeline passes σ = linspace(1, 1/n, n) to ``set_timesteps`` (Flux).
        max_shift: the pipeline's fallback for a scheduler config without ``max_shift``.
    """

    timestep_unit: str
    seq_len: Callable[[nn.Module, Sequence[int]], int] | None = None
    mu: str = "dynamic"
    linear_sigmas: bool = False
    max_shift: float = 1.16


def _patched_seq_len(transformer: nn.Module, shape: Sequence[int]) -> int:
    p = compat.patch_size(transformer)
    return (int(shape[-2]) // p) * (int(shape[-1]) // p)


def _packed_seq_len(transformer: nn.Module, shape: Sequence[int]) -> int:
    return int(shape[1])


FAMILIES: dict[str, TransformerFamily] = {
    "sd3": TransformerFamily("train", _patched_seq_len),
    "flux": TransformerFamily("unit", _packed_seq_len, mu="always", linear_sigmas=True, max_shift=1.15),
    "wan": TransformerFamily("train", mu="never"),
}
CLASS_FAMILIES = {"SD3Transformer2DModel": "sd3", "FluxTransformer2DModel": "flux", "WanTransformer3DModel": "wan"}


class _TransformerCall(nn.Module):
    """``(x, σ, cond) -> v``: the transformer at the pipeline's timestep, condition and shared inputs by keyword."""

    def __init__(self, transformer: nn.Module, family: str, n_train: int, inputs: Mapping) -> None:
        super().__init__()
        self.transformer, self.family, self.name, self.n_train = transformer, FAMILIES[family], family, n_train
        self.inputs = dict(inputs)

    def forward(self, x: Tensor, sigma: Tensor, cond: Cond) -> Tensor:
        check_latents("x", x, self.transformer, self.name)
        check_condition("cond", cond, self.transformer, x.shape[0])
        assert isinstance(cond, Mapping)  # checked just above
        check_present("cond", cond, self.inputs, self.transformer, self.name)
        # The schedulers hold float32 σ and timesteps = σ·N in float32; so does the pipeline's call.
        timestep = sigma.to(torch.float32) * self.n_train
        if self.family.timestep_unit == "unit":
            timestep = timestep.to(x.dtype) / 1000
        kwargs = {**self.inputs, **cond}
        return self.transformer(hidden_states=x, timestep=timestep, return_dict=False, **kwargs)[0]


class TransformerVelocity(VelocityModel):
    """A diffusers flow transformer as a :class:`VelocityModel` on the rectified path (t = σ).

    Built by :func:`wrap_transformer`; ``family`` says how its pipelines call it and set σ.
    """

    def __init__(self, transformer: nn.Module, family: str, n_train: int, null_cond: Any, inputs: Mapping) -> None:
        null = null_spec(null_cond, transformer) if null_cond is not None else None
        call = _TransformerCall(transformer, family, n_train, inputs)
        super().__init__(call, null_cond=null, path=RectifiedFlowPath())
        self.transformer, self.family, self.num_train_timesteps = transformer, FAMILIES[family], n_train
        self.family_name = family

    def schedule_kwargs(self, scheduler: Any, steps: int, shape: Sequence[int]) -> dict[str, Any]:
        """The ``set_timesteps`` keywords this model's pipeline passes for ``steps`` and latents ``shape``.

        μ = base_shift + (max_shift − base_shift)·(L − L_base)/(L_max − L_base) for image
        sequence length L (the resolution-dependent shift of SD3, arXiv 2403.03206, §5.3.2).
        """
        fam, get = self.family, lambda k, d: compat.config_value(scheduler, k, d)
        kwargs: dict[str, Any] = {}
        if fam.linear_sigmas and not get("use_flow_sigmas", False):
            kwargs["sigmas"] = np.linspace(1.0, 1.0 / steps, steps)
        if fam.seq_len is not None and (
            fam.mu == "always" or (fam.mu == "dynamic" and get("use_dynamic_shifting", False))
        ):
            base_len, max_len = get("base_image_seq_len", 256), get("max_image_seq_len", 4096)
            base_shift, max_shift = get("base_shift", 0.5), get("max_shift", fam.max_shift)
            slope = (max_shift - base_shift) / (max_len - base_len)
            kwargs["mu"] = fam.seq_len(self.transformer, shape) * slope + (base_shift - slope * base_len)
        return kwargs


def wrap_transformer(
    transformer: nn.Module,
    scheduler: Any,
    *,
    null_cond: Mapping[str, Tensor] | Callable[[int], Any] | None,
    inputs: Mapping[str, Any] | None = None,
    family: str | None = None,
) -> TransformerVelocity:
    """A diffusers flow-matching transformer as a velocity model ``v(x, σ, cond)`` (module docstring).

    Args:
        transformer: ``SD3Transformer2DModel``, ``FluxTransformer2DModel``, ``WanTransformer3DModel``, or another flow
            transformer whose pipelines follow one of :data:`FAMILIES` (pass ``family``).
        scheduler: the pipeline's flow-matching scheduler (its N = ``num_train_timesteps``).
        null_cond: ∅ for one sample: a dict of the condition's tensors without batch dimension,
            or ``batch_size -> dict``; ``None`` for a model only guided against negatives.
        inputs: keyword inputs shared by every row (Flux: ``txt_ids``, ``img_ids``).
        family: ``"sd3"``, ``"flux"`` or ``"wan"``; by default from the transformer's class.

    Returns:
        a :class:`TransformerVelocity` on :class:`~unified_guidance.schedules.RectifiedFlowPath`;
        x is the pipeline's latents ``(B, C, H, W)`` (SD3), packed ``(B, S, C)`` (Flux) or
        ``(B, C, F, H, W)`` (Wan).
    """
    if not isinstance(transformer, nn.Module):
        raise TypeError(f"transformer: expected a diffusers transformer (nn.Module), got {type(transformer).__name__}")
    if family is None:
        family = _class_family(transformer)
        if family is None:
            raise ValueError(
                f"family: {type(transformer).__name__} is not one of {', '.join(CLASS_FAMILIES)}; pass "
                f"family= one of {', '.join(FAMILIES)} (how its pipeline passes the timestep and σ schedule)"
            )
    if family not in FAMILIES:
        raise ValueError(f"family: unknown family {family!r}; valid families: {', '.join(FAMILIES)}")
    own = _class_family(transformer)
    if own is not None and own != family:
        raise ValueError(
            f"family: {type(transformer).__name__} is a {own!r} transformer, got family={family!r} (its pipelines "
            "pass another timestep scale and σ schedule); leave family out"
        )
    compat.check_flow_scheduler(scheduler)
    inputs = dict(inputs or {})
    bad = sorted(k for k in inputs if k in compat.RESERVED_INPUTS or k not in compat.forward_names(transformer))
    if bad:
        raise ValueError(f"inputs: {type(transformer).__name__}.forward takes no shared input {', '.join(bad)}")
    return TransformerVelocity(transformer, family, compat.num_train_timesteps(scheduler), null_cond, inputs)


def _class_family(transformer: nn.Module) -> str | None:
    names = [cls.__name__ for cls in type(transformer).__mro__]
    return next((CLASS_FAMILIES[n] for n in names if n in CLASS_FAMILIES), None)


def scheduler_sigmas(
    model: TransformerVelocity, scheduler: Any, steps: int, shape: Sequence[int], **schedule: Any
) -> Tensor:
    """The σ grid ``(steps + 1,)`` (float64, ending at 0) the model's pipeline samples on.

    ``schedule`` overrides the pipeline's ``sigmas``/``mu``. Integrate on it with
    ``ug.flow.sample(model, g, noise, cond, method="euler", t_span=(σ[0], σ[-1]), options=sigma_grid(σ))``.
    """
    _check_model(model, scheduler)
    _check_steps(steps)
    compat.set_timesteps(scheduler, steps, **{**model.schedule_kwargs(scheduler, steps, shape), **schedule})
    return compat.grid_sigmas(scheduler)


def sigma_grid(sigmas: Tensor) -> dict[str, Any]:
    """torchdiffeq ``options`` for a fixed-grid solver that steps exactly on ``sigmas``."""
    grid = torch.as_tensor(sigmas, dtype=torch.float64).reshape(-1)

    def constructor(func: Any, y0: Tensor, t: Tensor) -> Tensor:
        knots = grid.to(device=t.device, dtype=t.dtype)
        if knots[0] != t[0] or knots[-1] != t[-1]:
            raise ValueError(
                f"t_span: expected the grid's ends ({float(grid[0])}, {float(grid[-1])}), "
                f"got ({float(t[0])}, {float(t[-1])})"
            )
        return knots

    return {"grid_constructor": constructor}


def sample_with_scheduler(
    model: TransformerVelocity,
    guidance: Guidance | float,
    scheduler: Any,
    shape: Sequence[int] | None,
    cond: Cond | Conditions,
    *,
    steps: int,
    noise: Tensor | None = None,
    generator: torch.Generator | None = None,
    sigmas: Sequence[float] | None = None,
    mu: float | None = None,
    progress: bool | None = None,
) -> SampleOutput:
    """Run a flow-matching scheduler's loop (Euler, Heun) with the guided velocity.

    Each step evaluates ``ũ = u(∅) + s(τ)·(u(y) − u(∅))`` (or the guidance's rule) at the scheduler's σ
    and calls ``scheduler.step``; Heun's second stages are evaluations too (``stats.nfe`` counts them).
    Nothing runs under ``no_grad``: call it inside ``torch.no_grad()`` for inference, as the
    pipelines do, unless gradients through the loop are wanted.

    Args:
        model: from :func:`wrap_transformer`.
        guidance: a :class:`Guidance` or a CFG scale (Flux: ``true_cfg_scale``; SD3: ``guidance_scale``).
        scheduler: ``FlowMatchEulerDiscreteScheduler`` or ``FlowMatchHeunDiscreteScheduler``;
            reset with the σ schedule the model's pipeline would set (shift, μ).
        shape: the latents' shape (ignored when ``noise`` is given).
        cond: the condition dict for B rows, or :class:`Conditions` (negative prompt, composition).
        steps: inference steps; ``sigmas``, ``mu``: override the pipeline's σ schedule.
        noise: the starting latents at σ = 1 (pure noise), ``(B, ...)``; ``generator`` seeds it and stochastic steps.

    Returns:
        a :class:`~unified_guidance.guidance.SampleOutput`: the latents (shape of ``noise``) and their cost.
    """
    _check_model(model, scheduler)
    _check_steps(steps)
    given = "noise" if noise is not None else "shape"
    if noise is None:
        if shape is None:
            raise ValueError("shape: expected the latents' shape when no noise is given, got None")
        param = next(model.transformer.parameters())
        noise = randn(shape, generator, param.dtype, param.device)
    check_latents(given, noise, model.transformer, model.family_name)
    check_state("noise", noise)
    schedule = model.schedule_kwargs(scheduler, steps, noise.shape)
    schedule.update({k: v for k, v in (("sigmas", sigmas), ("mu", mu)) if v is not None})
    compat.set_timesteps(scheduler, steps, **schedule)
    timesteps, step_sigmas = compat.step_sigmas(scheduler)
    guided = GuidedModel(model, as_guidance(guidance))
    guided.reset()
    meter = CostMeter.of(guided)
    x, step = noise, compat.stepper(scheduler, generator)
    show = sys.stderr.isatty() if progress is None else progress
    for k, sigma in tqdm(list(zip(timesteps, step_sigmas, strict=True)), disable=not show, leave=False):
        v = guided(x, sigma.to(x.device), cond)
        x = step(v, k, x)
    return SampleOutput(x, meter.stats(nfe=len(timesteps), steps=steps))


def _check_model(model: Any, scheduler: Any) -> None:
    if not isinstance(model, TransformerVelocity):
        raise TypeError(f"model: expected a model from wrap_transformer, got {type(model).__name__}")
    compat.check_flow_scheduler(scheduler)
    n = compat.num_train_timesteps(scheduler)
    if n != model.num_train_timesteps:
        raise ValueError(
            f"scheduler: expected num_train_timesteps={model.num_train_timesteps} (the model's, from "
            f"wrap_transformer), got {n}"
        )


def _check_steps(steps: Any) -> None:
    check_int("steps", steps, lo=1)
