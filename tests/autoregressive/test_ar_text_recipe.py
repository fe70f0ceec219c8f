"""The text loader and the user-facing recipe, on a tiny chat model and tokenizer saved locally."""

import pytest
import torch
from ar_models import save_tiny_chat_model

from recipes import smollm2_guidance as recipe
from unified_guidance.autoregressive import chat_prompts, generate, load_causal_lm, packaged_gguf
from unified_guidance.evaluation.text import ENGLISH_WORDS, FRENCH_WORDS, adherence, distinct_n, words


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
    return save_tiny_chat_model(tmp_path_factory.mktemp("tiny_chat"))


def test_loader_reads_a_local_model_offline_and_pads_chats_on_the_left(saved_chat_model):
    loaded = load_causal_lm(saved_chat_model, local_files_only=True)
    assert loaded.name == saved_chat_model and loaded.gguf_file is None
    assert loaded.parameters == sum(p.numel() for p in loaded.lm.parameters()) > 0
    assert not loaded.lm.training and loaded.tokenizer.padding_side == "left"
    chats = chat_prompts(loaded.tokenizer, ["what is the capital of italy ? answer in french .", "why ?"])
    ids, mask = chats["input_ids"], chats["attention_mask"]
    bot = loaded.tokenizer.convert_tokens_to_ids("<bot>")
    assert bool((ids[:, -1] == bot).all()) and bool(mask[:, -1].all())  # the assistant's turn is opened
    assert mask[1].tolist() == [0] * 9 + [1] * 4  # "<user> why ? <bot>", left-padded to the 13 tokens of the first


def test_loader_errors_name_the_argument(saved_chat_model, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"model: expected an existing \.gguf file"):
        load_causal_lm(tmp_path / "absent.gguf")
    loaded = load_causal_lm(saved_chat_model, local_files_only=True)
    loaded.tokenizer.chat_template = None
    with pytest.raises(ValueError, match="tokenizer: expected a chat template"):
        chat_prompts(loaded.tokenizer, ["hi"])


def test_packaged_gguf_finds_the_file_without_importing_the_package(tmp_path, monkeypatch):
    package = tmp_path / "fake_model_pkg"
    (package / "weights").mkdir(parents=True)
    (package / "__init__.py").write_text("raise ImportError('must not be imported')\n")
    (package / "weights" / "m.gguf").write_bytes(b"GGUF")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert packaged_gguf("fake_model_pkg") == package / "weights" / "m.gguf"
    assert packaged_gguf("no_such_model_pkg") is None


def test_scale_one_is_the_instructed_chat_alone(saved_chat_model):
    loaded = load_causal_lm(saved_chat_model, local_files_only=True)
    questions = ["what is the capital of italy ?", "why is the sky blue ?"]
    cond = chat_prompts(loaded.tokenizer, [f"{q} answer in french ." for q in questions])
    ref = chat_prompts(loaded.tokenizer, questions)
    common = {"attention_mask": cond["attention_mask"], "max_new_tokens": 4, "pad_token_id": 1, "eos_token_id": []}
    plain = generate(loaded.lm, cond["input_ids"], **common)
    one = generate(
        loaded.lm, cond["input_ids"], negative_input_ids=ref["input_ids"],
        negative_attention_mask=ref["attention_mask"], guidance=1.0, **common,
    )  # fmt: skip
    three = generate(
        loaded.lm, cond["input_ids"], negative_input_ids=ref["input_ids"],
        negative_attention_mask=ref["attention_mask"], guidance=3.0, **common,
    )  # fmt: skip
    assert torch.equal(plain, one) and not torch.equal(plain, three)


def test_recipe_prints_a_table_per_scale(saved_chat_model, capsys):
    argv = [
        "--model", saved_chat_model, "--prompt", "what is the capital of italy ?", "--prompt", "why is the sky blue ?",
        "--answer", "rome", "--judge", "positive", "--scales", "1", "3", "--samples", "2", "--max-new-tokens", "3",
    ]  # fmt: skip
    assert recipe.main(argv) == 0
    out = capsys.readouterr().out.splitlines()
    params = sum(p.numel() for p in load_causal_lm(saved_chat_model).lm.parameters())
    assert out[0].startswith(f"{saved_chat_model}: {params:,} parameters")
    assert [line.split("|")[1].strip() for line in out[3:]] == ["1", "3"]  # one row per scale, in order


def test_recipe_without_a_model_says_how_to_get_one(monkeypatch, capsys):
    monkeypatch.setattr(recipe, "packaged_gguf", lambda: None)
    with pytest.raises(SystemExit):
        recipe.main([])
    assert "make demo installs it" in capsys.readouterr().err
