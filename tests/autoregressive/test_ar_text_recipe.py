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
    assert out[1] == "judge: VADER compound ≥ 0.05 (adherence = share of answers it passes)"
    assert "given the bare prompt (ppl bare)" in out[2] and "given the instructed prompt (ppl instructed" in out[2]
    head = out.index(next(line for line in out if line.startswith("| s |")))
    assert "| ppl bare | ppl instructed |" in out[head]
    assert [line.split("|")[1].strip() for line in out[head + 2 :]] == ["1", "3"]  # one row per scale, in order


def test_recipe_without_a_model_says_how_to_get_one(monkeypatch, capsys):
    monkeypatch.setattr(recipe, "packaged_gguf", lambda: None)
    with pytest.raises(SystemExit):
        recipe.main([])
    assert "make demo installs it" in capsys.readouterr().err


TWO_PROMPTS = ["--prompt", "what is the capital of italy ?", "--prompt", "why is the sky blue ?"]
SMALL = ["--scales", "1", "3", "--samples", "2", "--max-new-tokens", "3"]


def adherence_column(out: str) -> list[str]:
    return [
        line.split("|")[2].split()[0]
        for line in out.splitlines()
        if line.startswith("| 1 |") or line.startswith("| 3 |")
    ]


def test_recipe_takes_a_regex_judge_and_names_it(saved_chat_model, capsys):
    argv = [
        "--model",
        saved_chat_model,
        *TWO_PROMPTS,
        "--instruction",
        "talk like a pirate .",
        "--judge",
        "regex:^",
        *SMALL,
    ]
    assert recipe.main(argv) == 0
    out = capsys.readouterr().out
    assert "judge: regex /^/ found (case-insensitive)" in out
    assert adherence_column(out) == ["1.00", "1.00"]  # the empty pattern occurs in every answer


def test_recipe_takes_a_callable_judge_from_python(saved_chat_model, capsys):
    def never(text: str) -> bool:
        return False

    argv = ["--model", saved_chat_model, *TWO_PROMPTS, "--instruction", "talk like a pirate .", *SMALL]
    assert recipe.main(argv, judge=never) == 0
    out = capsys.readouterr().out
    assert "judge: test_recipe_takes_a_callable_judge_from_python.<locals>.never" in out
    assert adherence_column(out) == ["0.00", "0.00"]


def test_regex_judge_matches_case_insensitively_and_refuses_a_bad_pattern():
    from unified_guidance.evaluation.judges import PatternJudge, judge_from

    pirate = judge_from(r"regex:\b(arr+|matey)\b")
    assert isinstance(pirate, PatternJudge) and pirate("ARRR, matey!") and not pirate("a narrow road")
    with pytest.raises(ValueError, match=r"pattern: expected a regular expression, got '\('"):
        judge_from("regex:(")


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--samples", "0"], "--samples: expected at least 2 per prompt (diversity compares them), got 0"),
        (["--max-new-tokens", "0"], "--max-new-tokens: expected a positive number of tokens, got 0"),
        (["--scales", "1", "-2"], "--scales: expected guidance scales ≥ 0, got 1 -2"),
        (["--instruction", "Talk like a pirate."], "--judge: the default judge ('fr', py3langid: French) goes with"),
        (["--judge", "regex:("], "--judge: pattern: expected a regular expression"),
        (["--judge", "xx"], "--judge: language: expected an ISO 639-1 code py3langid knows, got 'xx'"),
    ],
)
def test_recipe_checks_its_arguments_before_loading_a_model(extra, message, tmp_path, capsys):
    absent = tmp_path / "absent.gguf"  # loading it would raise FileNotFoundError: the check comes first
    with pytest.raises(SystemExit) as stop:
        recipe.main(["--model", str(absent), *extra])
    assert stop.value.code == 2 and message in capsys.readouterr().err


def test_recipe_help_names_the_judges_and_the_perplexity_prompts(capsys):
    with pytest.raises(SystemExit):
        recipe.main(["--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "py3langid: French" in help_text and "'positive' (VADER)" in help_text and "'regex:PATTERN'" in help_text
    assert "given the bare prompt (ppl bare) and given the instructed prompt" in help_text
    assert "--save-converted DIR" in help_text


def test_save_converted_reloads_the_same_model_from_its_directory(saved_chat_model, tmp_path, capsys):
    from unified_guidance.autoregressive.loading import save_converted

    assert recipe.main(["--model", saved_chat_model, "--save-converted", str(tmp_path / "copy")]) == 0
    assert f"run with --model {tmp_path / 'copy'} next time" in capsys.readouterr().out
    original, copy = load_causal_lm(saved_chat_model), load_causal_lm(tmp_path / "copy", local_files_only=True)
    chats = chat_prompts(copy.tokenizer, ["why is the sky blue ?"])
    assert torch.equal(chats["input_ids"], chat_prompts(original.tokenizer, ["why is the sky blue ?"])["input_ids"])
    with torch.no_grad():
        torch.testing.assert_close(copy.lm(**chats).logits, original.lm(**chats).logits, rtol=0, atol=0)
    with pytest.raises(FileExistsError, match="directory: expected a new or empty directory"):
        save_converted(saved_chat_model, tmp_path / "copy")
