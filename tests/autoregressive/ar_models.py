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


CHAT_WORDS = (
    "what is the capital of italy why sky blue answer in french le la est de et rome ciel bleu ? . a cheerful "
    "enthusiastic tone sad gloomy do bees make honey color on clear day how many legs does spider have miel"
).split()
CHAT_TEMPLATE = (
    "{% for m in messages %}<user> {{ m['content'] }} {% endfor %}{% if add_generation_prompt %}<bot>{% endif %}"
)


def save_tiny_chat_model(path, seed: int = 0) -> str:
    """A tiny Llama and a word-level tokenizer with a chat template, saved to ``path`` (nothing downloaded).

    Special tokens: 0 ``<unk>``, 1 ``<pad>``, 2 ``<eos>``, 3 ``<user>``, 4 ``<bot>``; then :data:`CHAT_WORDS`.
    """
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = ["<unk>", "<pad>", "<eos>", "<user>", "<bot>"]
    vocab = {w: i for i, w in enumerate(dict.fromkeys(specials + CHAT_WORDS))}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>", eos_token="<eos>")
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(path)
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        pad_token_id=1,
        eos_token_id=2,
        bos_token_id=2,
        initializer_range=0.1,
    )
    LlamaForCausalLM(config).save_pretrained(path)
    return str(path)
