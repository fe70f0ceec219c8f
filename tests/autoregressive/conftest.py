"""Fixtures: tiny randomly initialised causal LMs (float64, built here; nothing is downloaded)."""

import pytest
from ar_models import tiny_gpt2, tiny_llama


@pytest.fixture(scope="module")
def gpt2():
    return tiny_gpt2()


@pytest.fixture(scope="module")
def llama():
    return tiny_llama()


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models gain nothing from a second thread, and lose to OpenMP wake-ups on a busy machine."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
