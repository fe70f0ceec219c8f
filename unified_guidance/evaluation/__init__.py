"""Evaluation on real digits: a classifier trained on them, and sample-quality metrics."""

from .classifier import DigitsClassifier, train_digits_classifier

__all__ = ["DigitsClassifier", "train_digits_classifier"]
