"""Evaluation: a classifier of real digits and sample-quality metrics, and the measures of generated
text (:mod:`.text`: word-set adherence, distinct-n, self-BLEU, repetition, perplexity; :mod:`.judges`)."""

from .classifier import DigitsClassifier, train_digits_classifier
from .text import adherence, distinct_n, self_bleu

__all__ = ["DigitsClassifier", "adherence", "distinct_n", "self_bleu", "train_digits_classifier"]
