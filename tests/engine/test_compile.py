"""Compile readiness of the per-step path: one graph per step, no graph breaks, no recompiles.

``torch.compile`` runs with a counting backend over Dynamo's graphs (the eager backend's
kernels, so compiled and eager results are bitwise equal): a graph break or a recompile
shows as a second graph. The network is the real TinyUNet/MLPNet behind the library's
adapters; the updates are the samplers' own (DDIM/DDPM steps, torchdiffeq's Euler).
"""

from __future__ import annotations

import pytest
import torch
import torch._dynamo as dynamo
from torch import Tensor

from unified_guidance.core.checks import DeferredChecks, NonFiniteError
from unified_guidance.core.spaces import to_x0_eps
from unified_guidance.diffusion import EpsModel, time_grid
from unified_guidance.diffusion.sample import _grid_coefficients, ddim_step, ddpm_step
from unified_guidance.flow import VelocityModel, sample
from unified_guidance.networks import MLPNet, TinyUNet
from unified_guidance.schedules import Beta, Constant, Cosine, Decay, Interval, Linear, Piecewise, Power
from unified_guidance.schedules.scale import SCHEDULES

SCHEDULE_CASES = [
    Constant(3.0),
    Linear(1.0, 7.0, 0.1, 0.9),
    Cosine(5.0, 1.0),
    Power(1.0, 4.0, exponent=3.0),
    Decay(6.0),
    Piecewise((1.0, 5.0, 1.0), (0.2, 0.8)),
    Interval(5.0, 0.2, 0.8),
    Beta(5.0),
    Interval(3.0, 0.1, 0.9) * Linear(1.0, 2.0),
]


class GraphCounter:
    """A ``torch.compile`` backend that counts the graphs Dynamo hands it and runs them eagerly."""

    def __init__(self) -> None:
        self.graphs = 0

    def __call__(self, gm: torch.fx.GraphModule, example_inputs: list[Tensor]):
        self.graphs += 1
        return gm.forward


def breaks(fn, *args) -> list[str]:
    """Dynamo's graph-break reasons for ``fn(*args)`` (empty: one graph, nothing skipped)."""
    dynamo.reset()
    explained = dynamo.explain(fn)(*args)
    reasons = [b.reason.splitlines()[0] for b in explained.break_reasons]
    if explained.graph_count != 1:  # a frame Dynamo gave up on entirely has no reason listed
        reasons.append(f"{explained.graph_count} graphs")
    return reasons


def test_every_registered_schedule_is_covered():
    covered = {type(s).__name__.lower() for s in SCHEDULE_CASES} | {"custom"}  # Custom runs the user's fn
    assert set(SCHEDULES) <= covered | {"product"}


@pytest.mark.parametrize("schedule", SCHEDULE_CASES, ids=lambda s: type(s).__name__)
def test_schedule_value_traces_without_graph_breaks(schedule):
    tau = torch.linspace(0.0, 1.0, 7)
    assert breaks(schedule.value, tau) == []
    torch.testing.assert_close(torch.compile(schedule.value, backend="eager")(tau), schedule(tau), rtol=0, atol=0)


def _unet() -> TinyUNet:
    torch.manual_seed(0)
    net = TinyUNet(width=16).eval()
    torch.nn.init.normal_(net.out[-1].weight, std=0.1)  # the zero-initialised output would predict ε = 0
    return net


def test_adapters_trace_without_graph_breaks():
    """EpsModel and VelocityModel check their input with host read-backs in eager mode only."""
    x, labels = torch.randn(4, 1, 8, 8), torch.arange(4)
    eps_model = EpsModel(_unet(), null_cond=10, num_classes=10, sample_shape=(1, 8, 8))
    assert breaks(lambda x: eps_model(x, torch.tensor(0.5), labels), x) == []
    velocity = VelocityModel(MLPNet(dim=2, num_classes=3, width=32), null_cond=3)
    assert breaks(lambda x: velocity(x, torch.full((4,), 0.5), labels % 3), torch.randn(4, 2)) == []
    with pytest.raises(ValueError, match=r"labels in \[0, 10\]"):
        eps_model(x, torch.tensor(0.5), torch.full((4,), 11))


@pytest.mark.parametrize(("method", "eta"), [("ddim", 0.0), ("ddim", 0.5), ("ddpm", 0.0)])
def test_diffusion_step_is_one_graph_for_every_step(method, eta):
    """The network's forward, (x̂0, ε̂) and the DDIM/DDPM update: one graph, reused at every step
    (the path coefficients are tensor inputs, never read back), equal to the eager loop."""
    net, steps = _unet(), 6
    model = EpsModel(net, null_cond=10, num_classes=10)
    step = {"ddim": ddim_step, "ddpm": ddpm_step}[method]
    labels = torch.arange(4) % 10
    times = time_grid(model.path, steps).to(torch.float32)
    coeffs = _grid_coefficients(model, times)
    noise = torch.randn(steps, 4, 1, 8, 8, generator=torch.Generator().manual_seed(1))

    def update(x: Tensor, t: Tensor, c_t, c_s, z: Tensor) -> Tensor:
        x0, eps = to_x0_eps(net(x, t.expand(x.shape[0]), labels), "eps", x, c_t)
        return step(x, x0, eps, c_t, c_s, z, eta)

    assert breaks(update, noise[0], times[0], coeffs[0], coeffs[1], noise[0]) == []
    counter = GraphCounter()
    compiled = torch.compile(update, backend=counter)
    x_eager = x_compiled = noise[0]
    with torch.no_grad():
        for i in range(steps):
            x_eager = update(x_eager, times[i], coeffs[i], coeffs[i + 1], noise[i])
            x_compiled = compiled(x_compiled, times[i], coeffs[i], coeffs[i + 1], noise[i])
    assert counter.graphs == 1
    assert torch.equal(x_compiled, x_eager)


def test_flow_euler_step_is_one_graph_and_equals_the_sampler():
    """The network's velocity and torchdiffeq's Euler update ``x + Δt·u(x, t)``, compiled, give
    the flow sampler's result (s = 1) bit for bit, with one graph for all steps."""
    torch.manual_seed(0)
    net = MLPNet(dim=2, num_classes=3, width=32)
    labels, steps = torch.tensor([0, 1, 2, 1]), 5
    x0 = torch.randn(4, 2, generator=torch.Generator().manual_seed(2))
    grid = torch.linspace(0.0, 1.0, steps + 1)

    def euler(x: Tensor, t0: Tensor, t1: Tensor) -> Tensor:
        return x + (t1 - t0) * net(x, t0.expand(x.shape[0]), labels)

    assert breaks(euler, x0, grid[0], grid[1]) == []
    counter = GraphCounter()
    compiled = torch.compile(euler, backend=counter)
    x = x0
    with torch.no_grad():
        for i in range(steps):
            x = compiled(x, grid[i], grid[i + 1])
        expected, _ = sample(VelocityModel(net, null_cond=3), 1.0, x0, labels, method="euler", steps=steps)
    assert counter.graphs == 1
    assert torch.equal(x, expected)


def test_deferred_checks_leave_a_compiled_graph_whole_and_still_raise_eagerly():
    def checked(x: Tensor) -> Tensor:
        checks = DeferredChecks()
        y = x * 2
        checks.trace("y", y, lambda: "made by doubling")
        checks.finite("output", y + 1)
        checks.verify()
        return y + 1

    x = torch.tensor([1.0, float("nan")])
    assert breaks(checked, x) == []
    torch.compile(checked, backend="eager")(x)  # no read-back inside the graph, so no error there
    with pytest.raises(NonFiniteError, match=r"^y: expected finite values, got 1 non-finite entries \(of 2\); made by"):
        checked(x)


def test_a_lazy_origin_is_only_formatted_when_a_check_fails():
    made = []

    def origin() -> str:
        made.append(1)
        return "from the rule"

    checks = DeferredChecks()
    checks.trace("guided", torch.ones(3), origin)
    checks.finite("out", torch.ones(3), origin)
    checks.verify()
    assert made == []
    checks.finite("out", torch.tensor([float("inf")]), origin)
    with pytest.raises(NonFiniteError, match=r"out: expected finite values, got 1 non-finite .*; from the rule"):
        checks.verify()
    assert made == [1]
