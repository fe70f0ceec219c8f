"""The guided model under torch.compile: one graph per guided call, no breaks, no recompiles
across the steps of a sampling loop, counts kept, results equal to eager — given the step's
plan (the scale-1 skips decided before the loop, :meth:`GuidedModel.plan`)."""

from __future__ import annotations

import pytest
import torch

from tests.engine.test_compile import GraphCounter, _unet, breaks
from tests.perturb.attention_nets import token_model
from unified_guidance.diffusion import EpsModel, time_grid
from unified_guidance.guidance import APG, Guidance, GuidedModel, Reference, Rescale
from unified_guidance.perturb import pag
from unified_guidance.schedules import Interval

GUIDANCES = {
    "cfg": Guidance(scale=4.0),
    "interval": Guidance(scale=Interval(4.0, 0.3, 0.7)),
    "rescale": Guidance(scale=4.0, post=(Rescale(0.7),)),
    "apg": Guidance(rule=APG(), scale=4.0),
    "unchecked": Guidance(scale=4.0, check_finite=False),
}


def _model() -> EpsModel:
    return EpsModel(_unet(), null_cond=10, num_classes=10)


@pytest.mark.parametrize("name", GUIDANCES, ids=str)
def test_a_guided_call_with_its_plan_is_one_graph_at_every_step(name):
    model, steps = _model(), 6
    guided = GuidedModel(model, GUIDANCES[name])
    times = time_grid(model.path, steps).to(torch.float32)[:-1]
    plans = guided.plan(times)
    x, labels = torch.randn(4, 1, 8, 8, generator=torch.Generator().manual_seed(0)), torch.arange(4)
    call = lambda x, t, plan: guided.evaluate(x, t, labels, plan=plan).guided  # noqa: E731
    assert breaks(lambda x: call(x, times[2], plans[2]), x) == []
    before = model.stats.rows
    eager = [call(x, times[i], plans[i]) for i in range(steps)]
    rows = model.stats.rows - before
    guided.reset()
    counter = GraphCounter()
    compiled = torch.compile(call, backend=counter)
    with torch.no_grad():
        outs = [compiled(x, times[i], plans[i]) for i in range(steps)]
    distinct_plans = len({p for p in plans})
    assert counter.graphs == distinct_plans  # one graph per skip pattern, reused across steps
    assert model.stats.rows - before == 2 * rows  # the compiled calls counted their rows like the eager ones
    for a, b in zip(outs, eager, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)


def test_the_plan_is_what_the_eager_engine_decides():
    model = _model()
    guided = GuidedModel(model, Guidance(scale=Interval(3.0, 0.25, 0.75), also=[]))
    times = time_grid(model.path, 8)[:-1]
    plans = guided.plan(times)
    x, labels = torch.randn(2, 1, 8, 8), torch.tensor([1, 2])
    for t, plan in zip(times, plans, strict=True):
        with_plan = guided.evaluate(x, t, labels, plan=plan)
        without = guided.evaluate(x, t, labels)
        assert (with_plan.references[0] is None) == (without.references[0] is None) == plan.unit[0]
        assert torch.equal(with_plan.guided, without.guided)


def test_cfg_plus_pag_under_compile_gives_the_eager_result():
    """Perturbation hooks are installed per call, which Dynamo cannot trace (it splits the graph
    there, docs/perturbations.md); the compiled call still gives the eager result."""
    model = token_model(dtype=torch.float32)
    guided = GuidedModel(model, Guidance(scale=3.0, also=[Reference(pag("blocks.1.attn"), 2.0)], check_finite=False))
    x, t, labels = torch.randn(4, 1, 4, 4), torch.tensor(0.4), torch.arange(4) % 3
    plan = guided.plan(t[None])[0]
    call = lambda x: guided.evaluate(x, t, labels, plan=plan).guided  # noqa: E731
    eager = call(x)
    torch.testing.assert_close(torch.compile(call, backend="eager")(x), eager, rtol=1e-6, atol=1e-6)
