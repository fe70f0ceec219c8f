"""Shared test settings: one intra-op thread, and a float64 fixture for identities."""

import os

import pytest
import torch

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing downloads in the tests: a hub call fails at once
# The tests' tensors and models are tiny: a second thread buys nothing and, on a busy 2-core
# machine, OpenMP synchronisation made a tiny U-Net's forward 400× slower (5 ms → 2 s).
torch.set_num_threads(1)


@pytest.fixture
def float64():
    """Run a test under float64 defaults and restore the previous dtype after."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)
