"""The SmolLM2 recipe's measures and its loading path, on a tiny model and tokenizer saved locally."""

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from recipes.smollm2_guidance import chat_ids, guidance_report, load
from unified_guidance.autoregressive import generate
from unified_guidance.autoregressive.metrics import ENGLISH_WORDS, FRENCH_WORDS, adherence, distinct_n, words

WORDS = "what is the capital of italy why sky blue answer in french le la est de et rome ciel bleu ? .".split()
TEMPLATE = "{% for m in messages %}<user> {{ m['content'] }} {% endfor %}{% if add_generation_prompt %}<bot>{% endif %}"


def test_adherence_counts_target_among_counted_words():
    assert adherence("Le ciel est bleu, the sky!", FRENCH_WORDS, ENGLISH_WORDS) == pytest.approx(2 / 3)
    assert adherence("Rome.", FRENCH_WORDS, ENGLISH_WORDS) == 0.0  # no counted word
    assert adherence("bees make honey", {"honey", "bees"}) == pytest.approx(2 / 3)  # topic share of all words
    assert words("C'est l’eau 42") == ["c'est", "l'eau"]


def test_distinct_n_is_unique_over_all_ngrams():
    assert distinct_n(["a b a b"], 1) == pytest.approx(2 / 4)
    assert distinct_n(["a b a b"], 2) == pytest.approx(2 / 3)  # (a b), (b a), (a b)
    assert distinct_n(["x y", "x y"], 2) == pytest.approx(1 / 2)
    with pytest.raises(ValueError, match="n: expected an integer ≥ 1, got 0"):
        distinct_n(["a"], 0)


@pytest.fixture(scope="module")
def saved_chat_model(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny_chat")
    specials = ["<unk>", "<pad>", "<eos>", "<user>", "<bot>"]
    vocab = {w: i for i, w in enumerate(specials + WORDS)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>", eos_token="<eos>")
    fast.chat_template = TEMPLATE
    fast.save_pretrained(path)
    torch.manual_seed(0)
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


def test_recipe_loads_a_local_model_and_reports_per_scale(saved_chat_model):
    tokenizer, lm = load(saved_chat_model)
    questions = ["what is the capital of italy ?", "why is the sky blue ?"]
    report = guidance_report(tokenizer, lm, questions, [1.0, 3.0], max_new_tokens=5)
    assert [r.scale for r in report] == [1.0, 3.0]
    for r in report:
        assert len(r.answers) == 2 and 0.0 <= r.adherence <= 1.0 and 0.0 <= r.distinct_2 <= 1.0
    # The condition is the chat with the instruction; left padding lines the two chats up.
    cond, ref = chat_ids(tokenizer, questions, "answer in french ."), chat_ids(tokenizer, questions, None)
    assert cond["input_ids"].shape[1] > ref["input_ids"].shape[1]
    assert cond["attention_mask"][:, -1].all() and not ref["attention_mask"].all()
    # Scale 1 is the instructed chat alone: the reference prompt changes nothing.
    plain = generate(
        lm, cond["input_ids"], attention_mask=cond["attention_mask"], max_new_tokens=4, pad_token_id=1, eos_token_id=[]
    )
    one = generate(
        lm,
        cond["input_ids"],
        attention_mask=cond["attention_mask"],
        negative_input_ids=ref["input_ids"],
        negative_attention_mask=ref["attention_mask"],
        guidance=1.0,
        max_new_tokens=4,
        pad_token_id=1,
        eos_token_id=[],
    )
    assert torch.equal(plain, one)
