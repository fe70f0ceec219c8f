"""The diffusion adapter: any network ``net(x, t, cond)`` as a guided-ready :class:`ConditionalModel`.

The network predicts ε, x0 or v (Salimans & Ho, arXiv 2202.00512) on a
variance-preserving path ``x_t = α_t·x0 + σ_t·ε``; the engine converts between
them where a rule needs another space (APG and rescale work on x0). The null
condition ∅ is a learned label token (an ``int``: the index the network reserves
for "no class") or an explicit null tensor (one sample's embedding, e.g. the
empty prompt's).
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from ..core.conditions import Cond, NullSpec, check_labels
from ..core.model import ConditionalModel
from ..core.path import Path
from ..core.shapes import batch_time, check_module_input, time_dtype
from ..schedules.noise import LinearBetaSchedule

PREDICTIONS = ("eps", "x0", "v")


class EpsModel(ConditionalModel):
    """Wrap ``net(x, t, cond) -> prediction`` (same shape as x) as a diffusion model.

    Args:
        net: the network; called with x ``(B, ...)``, time ``(B,)`` (``t·time_scale``, in
            float32, or float64 for float64 x: never in half precision) and the condition.
            x must have the dtype and device of its parameters.
        path: the noise schedule (default :class:`LinearBetaSchedule`, DDPM's).
        prediction: what the network predicts: ``"eps"``, ``"x0"`` or ``"v"``.
        null_cond: ∅ — an ``int`` label token (conditions are then ``(B,)`` integer
            labels) or a tensor (conditions are then ``(B, *null.shape)`` floats).
        num_classes: with a label token, the number of real classes; labels must lie in
            ``[0, num_classes]`` (the null token included).
        sample_shape: the shape of one sample ``x[i]``, checked on every call.
        time_scale: multiplies t before the network sees it (1000 for a network
            trained on discrete DDPM timesteps k ≈ t·1000).
    """

    def __init__(
        self,
        net: nn.Module,
        *,
        path: Path | None = None,
        prediction: str = "eps",
        null_cond: NullSpec | None = None,
        num_classes: int | None = None,
        sample_shape: Sequence[int] | None = None,
        time_scale: float = 1.0,
    ) -> None:
        if prediction not in PREDICTIONS:
            raise ValueError(f"prediction: expected one of {', '.join(PREDICTIONS)}, got {prediction!r}")
        if not callable(net):
            raise TypeError(f"net: expected a callable nn.Module, got {type(net).__name__}")
        super().__init__(space=prediction, path=path or LinearBetaSchedule(), null_cond=null_cond)
        self.net = net
        self.num_classes = num_classes
        self.sample_shape = None if sample_shape is None else tuple(int(d) for d in sample_shape)
        self.time_scale = float(time_scale)

    @property
    def guidance_input(self) -> bool:
        """Whether ``net`` takes the guidance strength (its ``guidance_input`` attribute)."""
        return bool(getattr(self.net, "guidance_input", False))

    def predict(self, x: Tensor, t: Tensor, cond: Cond, beta: Tensor | None = None) -> Tensor:
        if self.sample_shape is not None and tuple(x.shape[1:]) != self.sample_shape:
            raise ValueError(f"x: expected samples of shape {self.sample_shape}, got {tuple(x.shape[1:])}")
        self._check_cond(cond, x.shape[0])
        check_module_input("x", x, self.net)
        t = batch_time(t, x.shape[0], device=x.device, dtype=time_dtype(x.dtype))
        out = self.net(x, t * self.time_scale, cond) if beta is None else self.net(x, t * self.time_scale, cond, beta)
        if not isinstance(out, Tensor) or out.shape != x.shape:
            got = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
            raise ValueError(f"net: expected an output of the shape of x {tuple(x.shape)}, got {got}")
        return out

    def _check_cond(self, cond: Cond, batch: int) -> None:
        """Labels with a label token, embeddings of the null tensor's shape with a null tensor."""
        null = self.null_spec
        if isinstance(null, int) and not isinstance(null, bool):
            check_labels("cond", cond, batch, self.num_classes)
        elif isinstance(null, Tensor):
            if not isinstance(cond, Tensor) or not cond.is_floating_point():
                got = f"{cond.dtype} tensor" if isinstance(cond, Tensor) else type(cond).__name__
                raise TypeError(f"cond: expected a floating-point embedding tensor (the null tensor's kind), got {got}")
            if tuple(cond.shape) != (batch, *null.shape):
                raise ValueError(f"cond: expected shape {(batch, *null.shape)}, got {tuple(cond.shape)}")
