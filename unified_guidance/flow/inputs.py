"""A diffusers flow transformer's inputs checked against its own config, before torch sees them.

What the transformer would otherwise fail on deep inside (a matrix product of mismatched widths)
or silently misread is refused here, naming the argument (``null_cond``, ``cond``, ``x`` or
``noise``), what the config expects and what came:

* latents: the family's rank (SD3 ``(B, C, H, W)``, Flux packed ``(B, S, C)``, Wan ``(B, C, F, H, W)``),
  ``C`` = the config's ``in_channels``, H and W divisible by the patch size;
* conditions: keyword inputs the forward takes; the inputs the family's pipelines always pass
  (SD3: ``encoder_hidden_states``, ``pooled_projections``; Flux adds ``txt_ids``, ``img_ids`` and,
  with ``guidance_embeds``, ``guidance``; Wan: ``encoder_hidden_states``) present in the condition
  or the shared ``inputs``; text embeddings as wide as ``joint_attention_dim`` (Wan: ``text_dim``),
  pooled ones as ``pooled_projection_dim``; one row per sample (∅: one sample, no batch dimension).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from torch import Tensor, nn

from ..compat import diffusers as compat

_WIDTH_KEYS = {  # condition input → config entries giving its last dimension (the first present)
    "encoder_hidden_states": ("joint_attention_dim", "text_dim"),
    "pooled_projections": ("pooled_projection_dim",),
}
_SAMPLE_RANK = {"encoder_hidden_states": 2, "pooled_projections": 1, "guidance": 0}  # one sample's tensor rank
LATENT_RANK = {"sd3": 4, "flux": 3, "wan": 5}
REQUIRED = {
    "sd3": ("encoder_hidden_states", "pooled_projections"),
    "flux": ("encoder_hidden_states", "pooled_projections", "txt_ids", "img_ids"),
    "wan": ("encoder_hidden_states",),
}


def required_inputs(transformer: nn.Module, family: str) -> tuple[str, ...]:
    """The keyword inputs the family's pipelines always pass to this transformer."""
    extra = ("guidance",) if family == "flux" and compat.model_config(transformer, "guidance_embeds", False) else ()
    return REQUIRED.get(family, ()) + extra


def check_latents(name: str, x: Any, transformer: nn.Module, family: str) -> None:
    """``x``: the family's latent rank, the config's channels, H and W divisible by the patch size."""
    rank = LATENT_RANK.get(family)
    if not isinstance(x, Tensor) or not x.is_floating_point() or (rank is not None and x.ndim != rank):
        layout = {"sd3": "(B, C, H, W)", "flux": "packed (B, S, C)", "wan": "(B, C, F, H, W)"}.get(family, "(B, ...)")
        got = f"shape {tuple(x.shape)} ({x.dtype})" if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"{name}: expected floating latents {layout} for {type(transformer).__name__}, got {got}")
    channels = compat.model_config(transformer, "in_channels")
    at = -1 if family == "flux" else 1
    if channels is not None and x.shape[at] != channels:
        raise ValueError(
            f"{name}: expected {channels} latent channels (in_channels of {type(transformer).__name__}) at dim "
            f"{at}, got shape {tuple(x.shape)}"
        )
    patch = compat.model_config(transformer, "patch_size")
    patch = patch[-1] if isinstance(patch, (tuple, list)) else patch
    if family != "flux" and isinstance(patch, int) and (x.shape[-1] % patch or x.shape[-2] % patch):
        raise ValueError(f"{name}: expected H and W divisible by the patch size {patch}, got shape {tuple(x.shape)}")


def check_condition(name: str, cond: Any, transformer: nn.Module, rows: int | None) -> None:
    """A condition dict: inputs the forward takes, widths from the config, ``rows`` rows (``None``: one sample)."""
    kind = type(transformer).__name__
    if not isinstance(cond, Mapping):
        raise TypeError(f"{name}: expected a dict of {kind}'s keyword inputs, got {type(cond).__name__}")
    unknown = sorted(k for k in cond if k not in compat.forward_names(transformer) or k in compat.RESERVED_INPUTS)
    if unknown:
        raise ValueError(f"{name}: {kind}.forward takes no condition input {', '.join(unknown)}")
    for key, value in cond.items():
        if not isinstance(value, Tensor):
            continue
        want = _width(transformer, key)
        if want is not None and (value.ndim == 0 or value.shape[-1] != want):
            raise ValueError(
                f"{name}: expected {key!r} of width {want} (the config's {_WIDTH_KEYS[key][0]}), got shape "
                f"{tuple(value.shape)}"
            )
        if rows is None and key in _SAMPLE_RANK and value.ndim != _SAMPLE_RANK[key]:
            raise ValueError(
                f"{name}: expected one sample's {key!r} without a batch dimension ({_SAMPLE_RANK[key]} dims), got "
                f"shape {tuple(value.shape)}"
            )
        if rows is not None and (value.ndim == 0 or value.shape[0] != rows):
            raise ValueError(f"{name}: expected {key!r} with {rows} rows (the batch of x), got {tuple(value.shape)}")


def check_present(name: str, cond: Mapping, inputs: Mapping, transformer: nn.Module, family: str) -> None:
    """Every input the family's pipelines pass is in the condition or the shared inputs."""
    missing = [k for k in required_inputs(transformer, family) if k not in cond and k not in inputs]
    if missing:
        raise ValueError(
            f"{name}: {type(transformer).__name__} needs {', '.join(missing)} (its pipelines always pass them), "
            f"got a condition with {', '.join(sorted(cond)) or 'no inputs'}; shared inputs go in inputs="
        )


def _width(transformer: nn.Module, key: str) -> int | None:
    for entry in _WIDTH_KEYS.get(key, ()):
        value = compat.model_config(transformer, entry)
        if isinstance(value, int):
            return value
    return None


def null_spec(null_cond: Any, transformer: nn.Module) -> Callable[[int], Any]:
    """One sample's condition dict (no batch dimension), checked against the transformer's config,
    → ``batch_size -> dict``; a callable is kept."""
    if callable(null_cond):
        return null_cond
    if not isinstance(null_cond, Mapping) or not all(isinstance(v, Tensor) for v in null_cond.values()):
        raise TypeError(
            "null_cond: expected one sample's condition as a dict of tensors without a batch dimension "
            f"(e.g. {{'encoder_hidden_states': emb[0], 'pooled_projections': pooled[0]}}), "
            f"got {type(null_cond).__name__}"
        )
    check_condition("null_cond", null_cond, transformer, None)
    rows = dict(null_cond)
    return lambda b: {k: v.unsqueeze(0).expand(b, *v.shape) for k, v in rows.items()}
