"""The velocity-field adapter: a conditional network ``u_θ(x, t, y)`` as a ConditionalModel.

Time convention (default, :class:`~unified_guidance.schedules.LinearFlowPath`):
noise at t = 0, data at t = 1, ``x_t = t·x1 + (1 − t)·x0`` with x0 ~ N(0, I),
velocity ``u_t(x) = E[x1 − x0 | x_t = x]`` (Lipman et al., arXiv 2210.02747;
Liu et al., arXiv 2209.03003). The other common convention, noise at σ = 1
(``x_σ = (1 − σ)·x_data + σ·ε``, velocity ``ε − x_data``, as in SD3/rectified
flow), is :class:`~unified_guidance.schedules.RectifiedFlowPath`; a model of one
convention is re-expressed in the other by :class:`Reparametrized`, through the
engine's (x0, ε) conversions.
"""

from __future__ import annotations

from torch import Tensor, nn

from ..core.conditions import Cond, NullSpec
from ..core.model import ConditionalModel
from ..core.path import Path
from ..core.shapes import batch_time, check_module_input, check_unit_interval, time_dtype
from ..core.spaces import from_x0_eps, to_x0_eps
from ..schedules.noise import LinearFlowPath


def check_output(name: str, out: Tensor, x: Tensor) -> Tensor:
    """Raise unless ``out`` is a tensor of the shape, dtype-kind and device of ``x``."""
    if not isinstance(out, Tensor):
        raise TypeError(f"{name}: expected a tensor output, got {type(out).__name__}")
    if out.shape != x.shape:
        raise ValueError(f"{name}: expected an output of shape {tuple(x.shape)} (that of x), got {tuple(out.shape)}")
    return out


class VelocityModel(ConditionalModel):
    """A velocity network ``net(x, t, cond) -> u`` ``(B, ...)`` with a null condition.

    ``t`` reaches the network as a ``(B,)`` tensor (a scalar time is broadcast to the batch)
    in :func:`~unified_guidance.core.shapes.time_dtype` of x's dtype: x's dtype for float32 and
    float64, float32 for a float16/bfloat16 x (a half-precision time grid collapses, as in
    :class:`~unified_guidance.diffusion.EpsModel`); times outside [0, 1] raise. ∅ is given as in the
    diffusion adapter: a label index (the learned null token, e.g. ``num_classes``),
    one sample's null tensor (an empty-prompt embedding), or ``batch_size -> cond``.

    Args:
        net: the network, called ``net(x, t, cond)``; it must return x's shape.
        null_cond: ∅ for one sample (``None``: no null condition).
        path: the time convention of ``net``; :class:`LinearFlowPath` by default.
    """

    def __init__(self, net: nn.Module, *, null_cond: NullSpec | None = None, path: Path | None = None) -> None:
        super().__init__(space="velocity", path=path if path is not None else LinearFlowPath(), null_cond=null_cond)
        self.net = net

    @property
    def guidance_input(self) -> bool:
        """Whether ``net`` takes the guidance strength (its ``guidance_input`` attribute)."""
        return bool(getattr(self.net, "guidance_input", False))

    def predict(self, x: Tensor, t: Tensor, cond: Cond, beta: Tensor | None = None) -> Tensor:
        check_unit_interval("t", t.detach())
        check_module_input("x", x, self.net)
        t = batch_time(t, x.shape[0], device=x.device, dtype=time_dtype(x.dtype))
        out = self.net(x, t, cond) if beta is None else self.net(x, t, cond, beta)
        return check_output("net", out, x)


class Reparametrized(ConditionalModel):
    """A velocity model re-expressed on another path with the same marginals.

    At progress τ both paths hold the same state x (same α and σ), so the pair
    (x_data, ε) a velocity implies is shared; the new velocity is
    ``α'_new·x_data + σ'_new·ε`` (:func:`~unified_guidance.core.spaces.convert`'s
    formulas with each path's coefficients). From the rectified convention to the
    linear one this is ``u_lin(x, t) = −u_rect(x, σ = 1 − t)``.

    Args:
        model: a ConditionalModel in space ``"velocity"``.
        path: the path to express it on (its time is what callers pass as ``t``).
    """

    def __init__(self, model: ConditionalModel, path: Path) -> None:
        if model.space != "velocity" or model.path is None:
            raise ValueError(f"model: expected a velocity model with a path, got space {model.space!r}")
        super().__init__(space="velocity", path=path, null_cond=model.null_spec)
        self.model = model

    def predict(self, x: Tensor, t: Tensor, cond: Cond) -> Tensor:
        check_unit_interval("t", t.detach())
        t = batch_time(t, x.shape[0], device=x.device, dtype=time_dtype(x.dtype))
        inner_path = self.model.path
        assert inner_path is not None
        t_inner = inner_path.time(self.progress(t)).to(t.dtype)
        new, old = self.coefficients(t), inner_path.coefficients(t_inner)
        if not (_close(new.alpha_t, old.alpha_t) and _close(new.sigma_t, old.sigma_t)):
            raise ValueError("path: expected a path with the same α_t, σ_t as the model's at equal progress")
        x0, eps = to_x0_eps(self.model(x, t_inner, cond), "velocity", x, old)
        return from_x0_eps(x0, eps, "velocity", x, new).to(x.dtype)


def _close(a: Tensor, b: Tensor) -> bool:
    return bool(((a - b).abs() <= 1e-5 * (1.0 + b.abs())).all())
