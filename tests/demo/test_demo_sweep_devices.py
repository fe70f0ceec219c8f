"""The demo's sweep over several devices with the default strategy: each device gets its own items.

Lightning's ``"auto"`` on several devices is ``"ddp"``, which starts the calling script again in
each process (the demo, or pytest, a second time, racing the first on the item files); the sweep
therefore picks a launcher that starts its own workers, and refuses an explicit ``"ddp"``.
"""

import pytest
import torch

from tests.demo.test_demo_predict import sampler, sweep_items
from unified_guidance.training.predict import predict_sweep, sweep_strategy


def test_several_devices_with_the_default_strategy_start_their_own_workers():
    assert sweep_strategy("cpu", 2, "auto") == "ddp_fork"
    assert sweep_strategy("cuda", "auto", "auto") == "ddp_spawn"  # every GPU: possibly several
    assert sweep_strategy("cuda", [0, 1], "auto") == "ddp_spawn"
    assert [sweep_strategy("cpu", d, "auto") for d in (1, "auto", [0])] == ["auto"] * 3  # one device: as given
    assert sweep_strategy("cpu", 2, "ddp_spawn") == "ddp_spawn"
    with pytest.raises(ValueError, match=r"strategy: 'ddp' on 2 devices starts the calling script again"):
        sweep_strategy("cpu", 2, "ddp")


def test_two_cpu_devices_with_the_default_strategy_share_the_items(tmp_path):
    items = sweep_items()
    single = predict_sweep(sampler(), items, tmp_path / "one", progress=False)
    double = predict_sweep(sampler(), items, tmp_path / "two", devices=2, progress=False)  # strategy="auto"
    assert {r.rank for r in double} == {0, 1}
    for a, b in zip(single, double, strict=True):
        assert a.key == b.key and a.forward_rows == b.forward_rows
        torch.testing.assert_close(a.samples, b.samples)
