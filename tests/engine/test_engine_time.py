"""A Python number t becomes a tensor once, in core.shapes.as_time: floats in x's (time) dtype, ints stay ints."""

import torch

import unified_guidance as ug
from unified_guidance.core.model import FunctionModel
from unified_guidance.schedules import LinearFlowPath


def _recording_model():
    seen: list[torch.Tensor] = []

    def net(x, t, cond):
        seen.append(t)
        return torch.zeros_like(x)

    return FunctionModel(net, space="velocity", path=LinearFlowPath(), null_cond=0), seen


def test_a_python_float_reaches_a_float64_network_unrounded():
    model, seen = _recording_model()
    x = torch.zeros(3, 2, dtype=torch.float64)
    ug.guide(model, 3.0)(x, 0.37, torch.tensor([1, 2, 1]))
    model(x, 0.37, torch.tensor([1, 2, 1]))
    assert len(seen) == 2
    for t in seen:
        assert t.dtype == torch.float64 and float(t) == 0.37  # not 0.3700000047683716 (through float32)


def test_half_precision_x_gets_a_float32_time_and_an_int_stays_an_int():
    model, seen = _recording_model()
    model(torch.zeros(3, 2, dtype=torch.float16), 0.37)
    model(torch.zeros(3, 2, dtype=torch.float64), 1)
    assert seen[0].dtype == torch.float32 and float(seen[0]) == float(torch.tensor(0.37, dtype=torch.float32))
    assert seen[1].dtype == torch.int64 and int(seen[1]) == 1  # a discrete timestep is not made a float
