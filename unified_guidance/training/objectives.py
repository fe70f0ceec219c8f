"""The training objective of the diffusion, flow and token modules, their distillation teacher and fine-tuning.

The objectives themselves are pure functions (:mod:`unified_guidance.guidance.objectives`); this
module turns the modules' hyper-parameters into one :class:`~unified_guidance.guidance.objectives.Objective`:

* ``objective``: ``"cfg"`` (condition dropout, the default), ``"gft"``, ``"model_guidance"`` or
  ``"distill"``; the default network takes the guidance strength β = 1/s
  (``default_net(..., guidance_input=True)``) for ``"gft"`` and ``"distill"``.
* ``scale_range``: (s_min, s_max) of the drawn strengths (GFT: β uniform on [1/s_max, 1/s_min],
  default (1, ∞); distillation: s uniform, default (1, 5)).
* ``mg_scale``: MG's w ∈ [0, 1) (CFG scale 1/(1 − w)); ``mg_ema``: take MG's stop-gradient term from the
  EMA weights instead of the trained ones.
* ``teacher_ckpt``: ``"distill"``: a checkpoint of the same module class trained with ``"cfg"``; its
  sampling model (EMA weights) is the frozen teacher. It is no part of the trained state: it is
  loaded on the first step that needs it, so a resumed run loads it again from the same path.
* ``init_from``: a checkpoint of the same module class whose sampling weights (EMA) start both
  the trained and the EMA weights when a fit sets up — the fine-tuning path of GFT (a CFG
  checkpoint into a network with the strength input, whose zero-initialised layers are the only
  weights it lacks: the model starts equal to the CFG model) and the student's start in distillation.
  A resumed fit restores its own checkpoint over it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel

from ..core.model import ConditionalModel
from ..guidance.objectives import OBJECTIVES, Objective

STRENGTH_KEY = ".strength."
"""Parameter names of the strength embedding (:class:`~unified_guidance.networks.embedding.ConditioningEmbedding`)."""


def check_objective(hp: Any) -> None:
    """Raise, naming the hyper-parameter, unless the objective options of ``hp`` agree."""
    name = hp["objective"]
    if name not in OBJECTIVES:
        raise ValueError(f"objective: expected one of {', '.join(OBJECTIVES)}, got {name!r}")
    if (name == "distill") != (hp["teacher_ckpt"] is not None):
        raise ValueError(
            "teacher_ckpt: expected the checkpoint of a trained CFG model with objective='distill' (and only then), "
            f"got teacher_ckpt={hp['teacher_ckpt']!r} with objective={name!r}"
        )
    Objective(name, hp["scale_range"], hp["mg_scale"], teacher=nn.Identity() if name == "distill" else None)


def _net(model: ConditionalModel) -> nn.Module:
    """A model adapter's network (inside its EMA :class:`~torch.optim.swa_utils.AveragedModel`, if one)."""
    net = cast(nn.Module, model.net)
    return net.module if isinstance(net, AveragedModel) else net


def load_weights(target: nn.Module, source: nn.Module, name: str = "init_from") -> None:
    """Copy ``source``'s weights into ``target``; ``target`` may have more: the strength embedding only
    (zero-initialised, so the copy computes what the source did). Anything else raises, naming ``name``."""
    have, given = target.state_dict(), source.state_dict()
    missing = [k for k in have if k not in given and STRENGTH_KEY not in f".{k}"]
    unexpected = [k for k in given if k not in have]
    shapes = [k for k in given if k in have and given[k].shape != have[k].shape]
    if missing or unexpected or shapes:
        raise ValueError(
            f"{name}: expected a checkpoint of the same network (the strength input aside); "
            f"missing {missing[:3]}, unexpected {unexpected[:3]}, other shapes {shapes[:3]}"
        )
    target.load_state_dict(given, strict=False)


class ObjectiveMixin:
    """The objective of a paradigm module (its hyper-parameters are documented in this module's docstring):
    the diffusion and flow modules' and the token modules'
    (:class:`~unified_guidance.training.autoregressive.TokenModule`, which have no ``mg_ema``).

    The host module provides ``hparams``, ``device``, :attr:`model` (sampling, EMA) and
    ``trained_model`` (:class:`~unified_guidance.core.ConditionalModel`) and ``load_from_checkpoint``;
    a host whose weights are not a model adapter's ``net``, or whose checkpoints are told apart by other
    hyper-parameters than (sample_shape, num_classes), overrides :meth:`weights_of` and :meth:`signature`.
    """

    hparams: Any
    device: torch.device
    _teacher: ConditionalModel | None = None

    if TYPE_CHECKING:  # provided by the host module (an attribute or a property)

        @property
        def model(self) -> ConditionalModel: ...

        @property
        def trained_model(self) -> ConditionalModel: ...

    @property
    def takes_strength(self) -> bool:
        """Whether the objective trains the strength input (the default network then has one)."""
        return self.hparams["objective"] in ("gft", "distill")

    def training_objective(self) -> Objective:
        """The :class:`~unified_guidance.guidance.objectives.Objective` of the hyper-parameters
        (the teacher of ``"distill"`` loaded here, once)."""
        hp = self.hparams
        teacher: ConditionalModel | None = None
        if hp["objective"] == "distill":
            teacher = self.teacher
        elif hp["objective"] == "model_guidance" and hp.get("mg_ema", False):
            teacher = self.model
        return Objective(hp["objective"], hp["scale_range"], hp["mg_scale"], teacher=teacher)

    @property
    def teacher(self) -> ConditionalModel:
        """The frozen teacher of ``"distill"``: the sampling model of ``teacher_ckpt`` (kept outside the
        module tree: not saved, not optimised, loaded again after a resume)."""
        if self._teacher is None:
            source = self._load_source(self.hparams["teacher_ckpt"], "teacher_ckpt")
            if source.hparams["objective"] != "cfg":
                raise ValueError(
                    f"teacher_ckpt: expected a model trained with objective='cfg', got {source.hparams['objective']!r}"
                )
            teacher = source.model.to(self.device).eval().requires_grad_(False)
            object.__setattr__(self, "_teacher", teacher)
        assert self._teacher is not None
        return self._teacher.to(self.device)

    def weights_of(self, model: ConditionalModel) -> nn.Module:
        """The weights ``init_from`` copies: a model adapter's network (inside its EMA, if one)."""
        return _net(model)

    def signature(self) -> tuple[str, Any]:
        """What a checkpoint must share with this module to serve as its source, and its value here."""
        return "(sample_shape, num_classes)", (tuple(self.hparams["sample_shape"]), self.hparams["num_classes"])

    def init_weights_from(self, path: str | Path) -> None:
        """Start the trained and the EMA weights from the sampling (EMA) weights of the checkpoint ``path``."""
        source = self.weights_of(self._load_source(path, "init_from").model)
        targets = (self.weights_of(self.trained_model), self.weights_of(self.model))
        for target in {id(n): n for n in targets}.values():
            load_weights(target, source)

    def setup(self, stage: str) -> None:
        super().setup(stage)  # type: ignore[misc]
        if stage == "fit" and self.hparams["init_from"] is not None:
            self.init_weights_from(self.hparams["init_from"])

    def _load_source(self, path: str | Path, name: str) -> Any:
        if not Path(path).is_file():
            raise FileNotFoundError(f"{name}: expected a checkpoint file of a {type(self).__name__}, got {path!r}")
        source = type(self).load_from_checkpoint(path, map_location="cpu")  # type: ignore[attr-defined]
        (what, mine), theirs = self.signature(), source.signature()[1]
        if mine != theirs:
            raise ValueError(f"{name}: expected a model of {what} {mine}, got {theirs}")
        return source
