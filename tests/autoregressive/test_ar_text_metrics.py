"""Text measures against hand-computed values, the judges on known sentences, the plausibility post-process."""

import math

import numpy as np
import pytest
import torch
from ar_models import VOCAB, prompts, tiny_gpt2, tiny_llama

from unified_guidance.autoregressive import PlausibilityMask, generate
from unified_guidance.evaluation.judges import LanguageJudge, SentimentJudge
from unified_guidance.evaluation.text import (
    bootstrap_interval,
    contains_answer,
    continuation_nll,
    mean_interval,
    perplexity,
    repetition,
    self_bleu,
)
from unified_guidance.guidance import Guidance


def test_repetition_is_the_share_of_repeated_ngrams():
    assert repetition("a b c a b c", 3) == pytest.approx(1 - 3 / 4)  # abc bca cab abc: 3 unique of 4
    assert repetition("la la la la la", 1) == pytest.approx(1 - 1 / 5)
    assert repetition("one two three", 3) == 0.0 and repetition("too short", 3) == 0.0
    with pytest.raises(ValueError, match="n: expected an integer ≥ 1, got 0"):
        repetition("a", 0)


def test_self_bleu_is_one_for_copies_and_zero_without_shared_ngrams():
    assert self_bleu(["the cat sat on the mat"] * 3) == pytest.approx(1.0)
    assert self_bleu(["alpha beta gamma delta", "one two three four"]) == 0.0
    with pytest.raises(ValueError, match="texts: expected at least 2 samples of a prompt, got 1"):
        self_bleu(["alone"])


def test_contains_answer_matches_whole_words_in_any_case():
    assert contains_answer("La capitale de l'Italie est ROME.", ["Rome", "Roma"])
    assert not contains_answer("Romeo and Juliet", ["Rome"])
    assert contains_answer("Spiders have 8 legs", ["8", "eight"]) and not contains_answer("18 legs", ["8"])
    with pytest.raises(ValueError, match="answers: expected at least one spelling"):
        contains_answer("x", [])


def test_perplexity_of_a_uniform_model_is_the_vocabulary_size():
    lm = tiny_llama()
    with torch.no_grad():
        lm.lm_head.weight.zero_()  # logits 0: p(w) = 1/V for every token
    p, c = prompts(3, 5), prompts(3, 4, seed=2)
    cont_mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0], [1, 0, 0, 0]])
    nll, count = continuation_nll(lm, p, torch.ones_like(p), c, cont_mask)
    assert count.tolist() == [4, 2, 1]
    torch.testing.assert_close(nll, count * math.log(VOCAB))
    assert perplexity(nll, count) == pytest.approx(VOCAB)
    assert perplexity(np.array([2 * math.log(3.0)]), np.array([2])) == pytest.approx(3.0)
    assert math.isnan(perplexity(np.zeros(1), np.zeros(1)))


def test_continuation_nll_scores_padded_rows_as_if_alone(gpt2):
    p = prompts(2, 6)
    p_mask = torch.tensor([[1] * 6, [0, 0, 1, 1, 1, 1]])
    c = prompts(2, 3, seed=3)
    c_mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    nll, _ = continuation_nll(gpt2, p, p_mask, c, c_mask)
    for row in range(2):
        seq = torch.cat([p[row][p_mask[row].bool()], c[row][c_mask[row].bool()]])[None]
        logp = torch.log_softmax(gpt2(input_ids=seq).logits[0].double(), -1)
        start = int(p_mask[row].sum())
        alone = -sum(logp[start - 1 + t, seq[0, start + t]] for t in range(int(c_mask[row].sum())))
        torch.testing.assert_close(nll[row], alone)
    with pytest.raises(ValueError, match="masks: expected the shapes of their ids"):
        continuation_nll(gpt2, p, p_mask[:, :3], c, c_mask)


def test_bootstrap_interval_brackets_the_mean_and_is_seeded():
    assert mean_interval([0.5] * 20) == (0.5, 0.5)
    values = [0.0, 1.0] * 30
    lo, hi = mean_interval(values)
    assert 0.3 < lo < 0.5 < hi < 0.7
    assert mean_interval(values) == (lo, hi)  # the same seed, the same interval
    wide = bootstrap_interval(lambda i: float(np.mean(np.asarray(values)[i])), len(values), level=0.99)
    assert wide[0] <= lo and wide[1] >= hi
    with pytest.raises(ValueError, match="level: expected a coverage in"):
        mean_interval(values, level=1.0)
    with pytest.raises(ValueError, match="n_items: expected at least 1 item, got 0"):
        mean_interval([])


def test_judges_on_known_sentences():
    french = LanguageJudge("fr")
    assert french("Le ciel est bleu parce que la lumière du soleil est diffusée par l'air.")
    assert not french("The sky is blue because sunlight is scattered by the air.")
    assert french.label("The sky is blue because sunlight is scattered by the air.") == "en"
    with pytest.raises(ValueError, match="language: expected an ISO 639-1 code py3langid knows, got 'xx'"):
        LanguageJudge("xx")
    tone = SentimentJudge()
    assert tone("What a wonderful, happy day! I love it.") and not tone("This is terrible, sad and awful.")
    assert tone.compound("The capital of Italy is Rome.") == 0.0  # neutral: below VADER's 0.05
    with pytest.raises(ValueError, match="threshold: expected a compound score in"):
        SentimentJudge(threshold=2.0)


@pytest.mark.parametrize("space", ["logprobs", "logits"])
def test_plausibility_post_process_equals_generates_mask_where_guided(space):
    lm = tiny_gpt2()
    ids, neg = prompts(3, 4), prompts(3, 2, seed=5)
    common = {"negative_input_ids": neg, "max_new_tokens": 6, "eos_token_id": [], "space": space}
    post = generate(lm, ids, guidance=Guidance(scale=4.0, post=(PlausibilityMask(0.2),)), **common)
    arg = generate(lm, ids, guidance=4.0, plausibility=0.2, **common)
    plain = generate(lm, ids, guidance=4.0, **common)
    assert torch.equal(post, arg) and not torch.equal(post, plain)
    with pytest.raises(ValueError, match=r"alpha: expected α in \(0, 1\], got 0"):
        PlausibilityMask(0.0)
