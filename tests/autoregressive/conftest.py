"""Fixtures: tiny randomly initialised causal LMs (float64, built here; nothing is downloaded)."""

import pytest
from ar_models import tiny_gpt2, tiny_llama


@pytest.fixture(scope="module")
def gpt2():
    return tiny_gpt2()


@pytest.fixture(scope="module")
def llama():
    return tiny_llama()
