"""A tiny random Llama and a word-level tokenizer, built and saved locally (nothing is downloaded).

vLLM's CPU attention takes head sizes of 32 and more, so the model has 4 heads of 32; float32 weights
with a wide initialisation keep the logits far apart, so greedy picks do not hinge on rounding.
"""

from __future__ import annotations

import torch

SPECIALS = ["<unk>", "<pad>", "<eos>"]
WORDS = [f"w{i}" for i in range(125)]
EOS = 2


def save_tiny_llama(path, seed: int = 0) -> str:
    """Save the model and its tokenizer to ``path``; returns the path as a string."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(SPECIALS + WORDS)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>", eos_token="<eos>")
    fast.save_pretrained(path)
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(vocab),
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        pad_token_id=1,
        eos_token_id=EOS,
        bos_token_id=EOS,
        initializer_range=0.2,
        torch_dtype="float32",
    )
    LlamaForCausalLM(config).save_pretrained(path)
    return str(path)


def random_prompts(count: int, lengths: tuple[int, int], seed: int = 1) -> list[list[int]]:
    """``count`` prompts of token ids (no special tokens) with lengths drawn from ``lengths`` (inclusive)."""
    g = torch.Generator().manual_seed(seed)
    sizes = torch.randint(lengths[0], lengths[1] + 1, (count,), generator=g)
    return [torch.randint(len(SPECIALS), len(SPECIALS) + len(WORDS), (int(n),), generator=g).tolist() for n in sizes]
