"""The vLLM suite (``make test-vllm``, its own venv ``.venv-vllm``): one engine per module, built once.

The engine's KV cache holds 20 blocks of 32 tokens and it schedules at most 48 tokens a step, so
two dozen concurrent pairs are admitted in turns, prefilled in chunks and preempted.
"""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
os.environ.setdefault("OMP_NUM_THREADS", "2")

ENGINE = {
    "dtype": "float32",
    "enforce_eager": True,
    "max_model_len": 128,
    "block_size": 32,
    "num_gpu_blocks_override": 20,
    "max_num_batched_tokens": 48,
    "max_num_seqs": 32,
    "enable_chunked_prefill": True,
    "disable_log_stats": False,
}


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory):
    from tests_vllm.tiny import save_tiny_llama

    return save_tiny_llama(tmp_path_factory.mktemp("tiny_llama"))


@pytest.fixture(scope="session")
def llm(model_dir):
    from unified_guidance.autoregressive.vllm import guided_llm

    engine = guided_llm(model_dir, **ENGINE)
    yield engine
    del engine


@pytest.fixture(scope="session")
def hf_model(model_dir):
    import torch
    from transformers import LlamaForCausalLM

    return LlamaForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()


def preemptions(llm) -> int:
    """vLLM's own count of preempted requests so far (``vllm:num_preemptions``)."""
    return int(sum(m.value for m in llm.get_metrics() if m.name == "vllm:num_preemptions"))
