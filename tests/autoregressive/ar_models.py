"""Tiny randomly initialised causal LMs built in the tests (nothing is downloaded)."""

import torch
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

VOCAB = 48
EOS, PAD = 1, 0


def tiny_gpt2(seed: int = 0, dtype: torch.dtype = torch.float64) -> GPT2LMHeadModel:
    torch.manual_seed(seed)
    config = GPT2Config(
        vocab_size=VOCAB,
        n_positions=96,
        n_embd=32,
        n_layer=2,
        n_head=2,
        bos_token_id=2,
        eos_token_id=EOS,
        pad_token_id=PAD,
        initializer_range=0.1,
    )
    return GPT2LMHeadModel(config).to(dtype).eval()


def tiny_llama(seed: int = 0, dtype: torch.dtype = torch.float64) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=96,
        bos_token_id=2,
        eos_token_id=EOS,
        pad_token_id=PAD,
        initializer_range=0.1,
    )
    return LlamaForCausalLM(config).to(dtype).eval()


def prompts(batch: int, length: int, seed: int = 1) -> torch.Tensor:
    """Token ids that avoid the special tokens 0, 1, 2."""
    return torch.randint(3, VOCAB, (batch, length), generator=torch.Generator().manual_seed(seed))
