"""Outside judges of generated text: language identification and lexicon sentiment.

Both ship their model inside their PyPI package (the ``text`` extra), so nothing is
downloaded when they run:

* :class:`LanguageJudge`: py3langid (Lui & Baldwin 2012, langid.py, a naive Bayes model
  over byte n-grams trained on 97 languages); passes when the identified language is the target.
* :class:`SentimentJudge`: VADER (Hutto & Gilbert, ICWSM 2014), a rule-based lexicon scorer;
  passes when the compound score is at least the threshold (0.05: VADER's own "positive").
* :class:`PatternJudge`: a regular expression (a keyword, a list of them), for an attribute
  neither model judges; any callable ``text -> bool`` is a judge too (:func:`judge_from`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


def _needs(package: str, extra: str = "text") -> ImportError:
    return ImportError(f"{package} is not installed: pip install 'unified-guidance[{extra}]' (or run make demo)")


@dataclass(frozen=True)
class LanguageJudge:
    """``judge(text) -> bool``: py3langid names ``language`` (ISO 639-1, e.g. ``"fr"``) for ``text``."""

    language: str
    _identifier: Any = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        try:
            from py3langid.langid import MODEL_FILE, LanguageIdentifier
        except ImportError:
            raise _needs("py3langid") from None
        # py3langid 0.3+ loads its numpy model with from_model_file; 0.2 its pickle with from_pickled_model.
        load = getattr(LanguageIdentifier, "from_model_file", None) or LanguageIdentifier.from_pickled_model
        object.__setattr__(self, "_identifier", load(MODEL_FILE))
        if self.language not in self._identifier.nb_classes:
            raise ValueError(f"language: expected an ISO 639-1 code py3langid knows, got {self.language!r}")

    def label(self, text: str) -> str:
        """The identified language of ``text``."""
        return str(self._identifier.classify(text)[0])

    def __call__(self, text: str) -> bool:
        return self.label(text) == self.language

    @property
    def name(self) -> str:
        return f"py3langid = {self.language}"


@dataclass(frozen=True)
class SentimentJudge:
    """``judge(text) -> bool``: VADER's compound score of ``text`` ≥ ``threshold`` (in [−1, 1])."""

    threshold: float = 0.05
    _analyzer: Any = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not -1.0 <= self.threshold <= 1.0:
            raise ValueError(f"threshold: expected a compound score in [-1, 1], got {self.threshold}")
        try:
            from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer
        except ImportError:
            raise _needs("vaderSentiment") from None
        object.__setattr__(self, "_analyzer", SentimentIntensityAnalyzer())

    def compound(self, text: str) -> float:
        """VADER's normalised compound score of ``text``."""
        return float(self._analyzer.polarity_scores(text)["compound"])

    def __call__(self, text: str) -> bool:
        return self.compound(text) >= self.threshold

    @property
    def name(self) -> str:
        return f"VADER compound ≥ {self.threshold:g}"


@dataclass(frozen=True)
class PatternJudge:
    """``judge(text) -> bool``: the regular expression ``pattern`` occurs in ``text`` (case-insensitive)."""

    pattern: str
    _compiled: Any = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "_compiled", re.compile(self.pattern, re.IGNORECASE))
        except re.error as e:
            raise ValueError(f"pattern: expected a regular expression, got {self.pattern!r} ({e})") from None

    def __call__(self, text: str) -> bool:
        return self._compiled.search(text) is not None

    @property
    def name(self) -> str:
        return f"regex /{self.pattern}/ found (case-insensitive)"


JUDGE_SPECS = "a py3langid language code ('fr'), 'positive' (VADER) or 'regex:PATTERN' (the pattern occurs)"
"""The judges a string names (:func:`judge_from`), in words for help texts and errors."""

Judge = Callable[[str], bool]


def judge_from(spec: str | Judge) -> Judge:
    """The judge ``spec`` names: ``"positive"`` (:class:`SentimentJudge`), ``"regex:PATTERN"``
    (:class:`PatternJudge`), else a language code (:class:`LanguageJudge`); a callable is its own judge."""
    if callable(spec):
        return spec
    if not isinstance(spec, str) or not spec:
        raise ValueError(f"judge: expected {JUDGE_SPECS} or a callable text -> bool, got {spec!r}")
    if spec == "positive":
        return SentimentJudge()
    if spec.startswith("regex:"):
        return PatternJudge(spec.removeprefix("regex:"))
    return LanguageJudge(spec)


def judge_name(judge: Judge) -> str:
    """How reports name ``judge``: its ``name``, else its function's name."""
    name = getattr(judge, "name", None)
    if isinstance(name, str):
        return name
    return str(getattr(judge, "__qualname__", None) or type(judge).__qualname__)
