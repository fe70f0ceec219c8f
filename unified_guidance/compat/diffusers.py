"""Every diffusers name the project relies on, in one place (optional extra ``diffusers``).

diffusers marks its guiders experimental and has changed scheduler internals between
releases; the attributes, config keys and hooks below are the ones the interop modules
(:mod:`unified_guidance.flow.interop`, :mod:`unified_guidance.flow.guider`,
:mod:`unified_guidance.diffusion.interop`) read. Each is reached through a small
function here (keyword support by signature inspection), so a rename is fixed in one file.

* Scheduler: ``set_timesteps(num_inference_steps, sigmas=, mu=)``, ``set_begin_index``,
  ``timesteps`` (σ·N, float32), ``sigmas`` (σ per timestep plus the terminal σ),
  ``step(..., return_dict=False)[0]``, ``alphas_cumprod`` (to refuse diffusion schedulers),
  ``config.num_train_timesteps`` and the shift keys read by the interop (``use_dynamic_shifting``,
  ``base_image_seq_len``, ``max_image_seq_len``, ``base_shift``, ``max_shift``, ``use_flow_sigmas``).
* Transformer: ``config.patch_size`` and the forward's keyword names; the call
  ``transformer(hidden_states=, timestep=, return_dict=False, ...)[0]`` is in the interop.
* ᾱ-table schedulers (DDIM, DDPM, Euler, DPM-Solver++; :mod:`unified_guidance.diffusion`):
  ``alphas_cumprod``, ``init_noise_sigma``, ``scale_model_input``, ``config.prediction_type``,
  and the VE ``sigmas`` of Euler-type steps; UNets: ``config.sample_size``, ``in_channels``,
  the output's ``.sample``.
* Guider: ``BaseGuidance`` with its ``_prepare_batch``, ``_count_prepared``, ``_timestep``,
  ``_enabled`` and ``register_to_config``; ``GuiderOutput``.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, cast

import torch
from torch import Tensor, nn

if TYPE_CHECKING:  # diffusers is an optional extra: imported where it is used
    from diffusers.guiders.guider_utils import BaseGuidance

_SCHEDULER_API = ("set_timesteps", "step", "timesteps", "sigmas", "config")


def check_flow_scheduler(scheduler: Any) -> None:
    """Raise unless ``scheduler`` is a diffusers flow-matching scheduler (σ grid, σ·N timesteps)."""
    missing = [name for name in _SCHEDULER_API if not hasattr(scheduler, name)]
    if missing or hasattr(scheduler, "alphas_cumprod"):
        why = f"without {', '.join(missing)}" if missing else "on an alphas_cumprod table (a diffusion scheduler)"
        raise ValueError(
            "scheduler: expected a diffusers flow-matching scheduler (FlowMatchEulerDiscreteScheduler, "
            f"FlowMatchHeunDiscreteScheduler), got {type(scheduler).__name__} {why}"
        )


def num_train_timesteps(scheduler: Any) -> int:
    """N of the scheduler's timesteps ``σ·N``."""
    return int(scheduler.config.num_train_timesteps)


def config_value(scheduler: Any, key: str, default: Any) -> Any:
    """A scheduler config entry, ``default`` where this scheduler has no such key."""
    return scheduler.config.get(key, default)


def set_timesteps(scheduler: Any, steps: int, **kwargs: Any) -> None:
    """``scheduler.set_timesteps(steps, **kwargs)``, dropping ``None`` values; a scheduler that
    cannot take a given keyword (Heun takes no ``sigmas``/``mu``) raises naming it."""
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    accepted = inspect.signature(scheduler.set_timesteps).parameters
    refused = [k for k in kwargs if k not in accepted]
    if refused:
        raise ValueError(
            f"scheduler: {type(scheduler).__name__}.set_timesteps takes no {', '.join(refused)}, which this "
            "pipeline's σ schedule needs; use FlowMatchEulerDiscreteScheduler"
        )
    scheduler.set_timesteps(steps, **kwargs)
    if hasattr(scheduler, "set_begin_index"):
        scheduler.set_begin_index(0)  # as the pipelines do: step i is entry i, no timestep lookup


def step_sigmas(scheduler: Any) -> tuple[Tensor, Tensor]:
    """The scheduler's timesteps and the σ of each, ``(n,)`` float32 both.

    ``sigmas[i]`` is the σ of ``timesteps[i]`` for FlowMatchEuler and FlowMatchHeun (whose
    second stages repeat both); schedulers whose timesteps are not σ·N are refused.
    """
    timesteps = scheduler.timesteps
    sigmas = scheduler.sigmas[: len(timesteps)].to(timesteps.device)
    if not torch.equal(sigmas * num_train_timesteps(scheduler), timesteps):
        raise ValueError(
            f"scheduler: expected timesteps = σ·{num_train_timesteps(scheduler)} on the scheduler's σ grid, "
            f"got {type(scheduler).__name__} timesteps that differ (custom timesteps or inverted σ?)"
        )
    return timesteps, sigmas


def grid_sigmas(scheduler: Any) -> Tensor:
    """The σ knots of the last ``set_timesteps`` with the terminal σ, repeats (Heun) removed; float64."""
    sigmas = scheduler.sigmas.to(torch.float64)
    return torch.unique_consecutive(sigmas)


def stepper(scheduler: Any, generator: Any) -> Callable[[Tensor, Tensor, Tensor], Tensor]:
    """``(velocity, timestep, x) -> x_next``: ``scheduler.step``, with ``generator`` where the step takes one
    (looked up once per loop: ``inspect.signature`` costs about 1 % of a tiny transformer's forward)."""
    extra = {"generator": generator} if "generator" in inspect.signature(scheduler.step).parameters else {}

    def step(velocity: Tensor, timestep: Tensor, x: Tensor) -> Tensor:
        return scheduler.step(velocity, timestep, x, return_dict=False, **extra)[0]

    return step


RESERVED_INPUTS = ("hidden_states", "timestep", "return_dict")
"""A flow transformer's forward inputs the interop passes itself (never part of a condition)."""


def model_config(model: nn.Module, key: str, default: Any = None) -> Any:
    """An entry of a diffusers model's config (``in_channels``, ``joint_attention_dim``,
    ``pooled_projection_dim``, ``text_dim``, ``guidance_embeds``, ``cross_attention_dim``,
    ``num_class_embeds``, ``patch_size``), ``default`` where the model has no config or no such key."""
    config = getattr(model, "config", None)
    return config.get(key, default) if isinstance(config, Mapping) else default


def patch_size(transformer: nn.Module) -> int:
    config: Any = transformer.config  # diffusers' frozen dict of the model's settings, read by attribute
    return int(config.patch_size)


def forward_names(transformer: nn.Module) -> frozenset[str]:
    """The keyword inputs of ``transformer.forward`` (read once per class: the adapters check every call)."""
    if "forward" in vars(transformer):  # a forward set on the instance (an offloading hook): read it there
        return frozenset(inspect.signature(transformer.forward).parameters)
    return _class_forward_names(cast(Any, type(transformer)))


@functools.cache
def _class_forward_names(cls: Any) -> frozenset[str]:
    return frozenset(inspect.signature(cls.forward).parameters) - {"self"}


def guider_base() -> tuple[type, type]:
    """diffusers' ``BaseGuidance`` and ``GuiderOutput``."""
    from diffusers.guiders.guider_utils import BaseGuidance, GuiderOutput

    return BaseGuidance, GuiderOutput


def prepare_batch(guider_cls: type[BaseGuidance], data: dict[str, Any], index: int, identifier: str) -> Any:
    """A ``BlockState`` of one branch: tuple fields give their ``index``-th entry (BaseGuidance._prepare_batch)."""
    return guider_cls._prepare_batch(data, index, identifier)


def register_config(guider: Any, **values: Any) -> None:
    """Record ``values`` as the guider's config (ConfigMixin.register_to_config; diffusers reads ``guider.config``)."""
    guider.register_to_config(**values)


def guider_timestep(guider: Any) -> Any:
    """The timestep of the pipeline's last ``set_state`` (BaseGuidance._timestep), ``None`` before any."""
    return guider._timestep


def guider_enabled(guider: Any) -> bool:
    """BaseGuidance._enabled (``enable()`` / ``disable()``)."""
    return bool(guider._enabled)


def count_prepared(guider: Any) -> int:
    """How many branches the pipeline has prepared models for this step (BaseGuidance._count_prepared)."""
    return int(guider._count_prepared)


def ve_step_sigmas(scheduler: Any) -> Tensor | None:
    """The σ = √((1 − ᾱ)/ᾱ) an ᾱ-table scheduler's step uses at each of its timesteps ``(S,)``, in
    the scheduler's dtype, or ``None`` for schedulers that convert with the ᾱ table at integer
    timesteps (DDIM, DDPM). Reads ``scheduler.sigmas`` (one per timestep plus the final 0)."""
    sigmas = getattr(scheduler, "sigmas", None)
    if not isinstance(sigmas, Tensor) or sigmas.ndim != 1 or len(sigmas) != len(scheduler.timesteps) + 1:
        return None
    return sigmas[:-1]


def block_output_names(module: nn.Module) -> tuple[str | None, ...] | None:
    """For a diffusers transformer block returning a tuple: the input argument each output element
    stands for (``("encoder_hidden_states", "hidden_states")`` for SD3's and Flux's blocks), from
    diffusers' own block registry; ``None`` where the block is unknown."""
    if not _from_diffusers(module):
        return None
    try:
        from diffusers.hooks._helpers import TransformerBlockRegistry

        meta = TransformerBlockRegistry.get(type(module))
    except (ImportError, AttributeError, ValueError):
        return None
    named = {
        meta.return_hidden_states_index: getattr(meta, "hidden_states_argument_name", "hidden_states"),
        meta.return_encoder_hidden_states_index: getattr(
            meta, "encoder_hidden_states_argument_name", "encoder_hidden_states"
        ),
    }
    places = {i: name for i, name in named.items() if i is not None}
    return tuple(places.get(i) for i in range(max(places) + 1)) if places else None


def _from_diffusers(module: nn.Module) -> bool:
    return type(module).__module__.split(".", 1)[0] == "diffusers"
