"""A unified_guidance :class:`~unified_guidance.Guidance` as a diffusers guider (optional extra ``diffusers``).

    guider = UnifiedGuider(ug.Guidance(rule=ug.guidance.APG(eta=0.0), scale=7.0), scheduler)
    pipe.update_components(guider=guider)          # a modular pipeline (stable_diffusion_3, …)

diffusers' modular pipelines ask their ``guider`` component, once per step, how many
branches to run (``num_conditions``), split the inputs into those branches
(``prepare_inputs``), run the denoiser on each, and hand the predictions back
(``forward``). This guider answers with the engine's own decisions: progress
τ = 1 − σ from the step's timestep σ·N (never the step index, so a schedule means the
same at any step count or shift), one branch where the scale is exactly 1 (outside a
σ interval, s = 1) and two elsewhere, and the rule and post-processes of the
:class:`~unified_guidance.Guidance` in their native space — APG and rescale on
x̂0 = x − σ·v, converted from and back to the flow velocity with the step's latents x.
APG's momentum is reset at step 0.

Scale: ours is diffusers' default formulation, ``u + s(c − u)``, s = ``guidance_scale``;
diffusers' ``use_original_formulation`` ``c + w(c − u)`` is s = w + 1.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from ..compat import diffusers as compat
from ..core.conditions import Cond
from ..core.model import ConditionalModel
from ..guidance.engine import Guidance, GuidedModel
from ..schedules.noise import RectifiedFlowPath

if TYPE_CHECKING:  # the checker sees diffusers' classes; at run time they come through compat
    from diffusers.guiders.guider_utils import BaseGuidance, GuiderOutput
else:
    BaseGuidance, GuiderOutput = compat.guider_base()


class _Replay(ConditionalModel):
    """A "model" that returns predictions the pipeline already computed: row i of the stacked
    table [c; u]. The condition is the row index (∅ = the rows after the B conditional ones),
    so the engine's branch logic, rule, state and conversions run unchanged on them."""

    def __init__(self) -> None:
        super().__init__(space="velocity", path=RectifiedFlowPath(), null_cond=lambda b: torch.arange(b, 2 * b))
        self.table: Tensor | None = None

    def predict(self, x: Tensor, t: Tensor, cond: Cond) -> Tensor:
        assert self.table is not None and isinstance(cond, Tensor)  # row indices
        if int(cond.max()) >= self.table.shape[0]:
            raise ValueError("pred_uncond: the guidance needs the reference branch at this step, got none")
        return self.table[cond.to(self.table.device)]


class UnifiedGuider(BaseGuidance):
    """diffusers' ``BaseGuidance`` running a unified_guidance :class:`Guidance` (module docstring).

    Args:
        guidance: the rule, τ schedule and post-processes; a reference model or several
            conditions are not available inside a diffusers pipeline.
        scheduler: the pipeline's flow-matching scheduler (its N maps a timestep to σ = t/N).
        latents_key: the guider input holding the latents (``"hidden_states"`` in the SD3 pipelines).
        enabled: ``False`` runs the conditional branch alone.
    """

    _input_predictions = ["pred_cond", "pred_uncond"]  # type: ignore[assignment]  # noqa: RUF012 (diffusers: = None in the base)

    def __init__(
        self, guidance: Guidance, scheduler: Any, *, latents_key: str = "hidden_states", enabled: bool = True
    ) -> None:
        compat.check_flow_scheduler(scheduler)
        self._setup(guidance, compat.num_train_timesteps(scheduler), latents_key, enabled)

    def _setup(self, guidance: Guidance, num_train_timesteps: int, latents_key: str, enabled: bool) -> None:
        super().__init__(0.0, 1.0, enabled)
        if not isinstance(guidance, Guidance):
            raise TypeError(f"guidance: expected a unified_guidance Guidance, got {type(guidance).__name__}")
        if len(guidance.references) > 1 or guidance.references[0].source is not None:
            raise ValueError(
                "guidance: a reference model or perturbation, or further references, cannot run inside a diffusers "
                "pipeline's guider (it hands over two branches); use ∅ or a negative, or sample with "
                "unified_guidance.flow.sample"
            )
        self.guidance = guidance
        # The JSON config diffusers keeps for every component; a Guidance is code, so only its repr.
        compat.register_config(self, guidance=repr(guidance), num_train_timesteps=num_train_timesteps)
        self.num_train_timesteps = num_train_timesteps
        self.latents_key = latents_key
        self._replay = _Replay()
        self._engine = GuidedModel(self._replay, guidance)
        self._latents: Tensor | None = None

    def get_state(self) -> dict[str, Any]:
        return {**super().get_state(), "guidance": self.guidance}

    def new(self, **kwargs: Any) -> UnifiedGuider:
        """A fresh guider with the same guidance (``guidance=``/``enabled=`` override), no step state."""
        fresh = object.__new__(type(self))
        fresh._setup(
            kwargs.get("guidance", self.guidance), self.num_train_timesteps, self.latents_key,
            kwargs.get("enabled", compat.guider_enabled(self)),
        )  # fmt: skip
        return fresh

    @property
    def stats(self):
        """The engine's counts: calls, reference branches skipped, rows saved."""
        return self._engine.stats

    # -- per step -----------------------------------------------------------------------------

    def set_state(self, step: int, num_inference_steps: int, timestep: Tensor) -> None:
        super().set_state(step, num_inference_steps, timestep)  # type: ignore[arg-type]  # diffusers: LongTensor
        if step == 0:
            self._engine.reset()

    def sigma(self) -> float:
        """σ = timestep/N of the current step."""
        timestep = compat.guider_timestep(self)
        if timestep is None:
            raise ValueError("timestep: the pipeline has not called set_state for this step")
        return float(torch.as_tensor(timestep, dtype=torch.float64)) / self.num_train_timesteps

    def _needs_reference(self) -> bool:
        if not compat.guider_enabled(self):
            return False
        if compat.guider_timestep(self) is None:
            return True
        tau = torch.tensor(1.0 - self.sigma(), dtype=torch.float64).clamp(0.0, 1.0)
        (ref,) = self.guidance.references
        if ref.rule.zero_output(tau):
            return False
        return not bool((ref.schedule(tau) == 1).all())

    @property
    def num_conditions(self) -> int:
        return 2 if self._needs_reference() else 1

    @property
    def is_conditional(self) -> bool:
        return compat.count_prepared(self) == 1

    def prepare_inputs(self, data: dict[str, Any]) -> list[Any]:  # type: ignore[override]  # diffusers passes a dict
        latents = data.get(self.latents_key)
        self._latents = latents[0] if isinstance(latents, tuple) else latents
        if self._latents is None:
            raise ValueError(f"latents_key: expected the guider input {self.latents_key!r}, got inputs {sorted(data)}")
        return [
            compat.prepare_batch(type(self), data, i, name)
            for i, name in enumerate(self._input_predictions[: self.num_conditions])
        ]

    def prepare_inputs_from_block_state(self, data: Any, input_fields: dict[str, Any]) -> list[Any]:
        """``input_fields`` maps a guider input to a block-state field, or to a (conditional, unconditional) pair."""
        fields = {
            k: getattr(data, v) if isinstance(v, str) else tuple(None if n is None else getattr(data, n) for n in v)
            for k, v in input_fields.items()
        }
        return self.prepare_inputs(fields)

    def forward(self, pred_cond: Tensor, pred_uncond: Tensor | None = None) -> Any:
        x = self._latents
        if x is None or x.shape != pred_cond.shape:
            got = None if x is None else tuple(x.shape)
            raise ValueError(f"latents_key: expected latents of shape {tuple(pred_cond.shape)}, got {got}")
        if not compat.guider_enabled(self):
            return GuiderOutput(pred=pred_cond, pred_cond=pred_cond, pred_uncond=pred_uncond)
        self._replay.table = pred_cond if pred_uncond is None else torch.cat([pred_cond, pred_uncond])
        batch = pred_cond.shape[0]
        t = torch.tensor(self.sigma(), dtype=x.dtype, device=x.device)
        try:
            guided = self._engine(x, t, torch.arange(batch, device=x.device))
        finally:
            self._replay.table = None
        return GuiderOutput(pred=guided, pred_cond=pred_cond, pred_uncond=pred_uncond)
