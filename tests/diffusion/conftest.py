"""One intra-op thread for the diffusion tests: their tensors are tiny, and on a shared 2-core machine
thread synchronisation (not arithmetic) dominated a tiny UNet's forward (2 s instead of 5 ms)."""

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
