"""Text measures for guided generation: adherence to a target word set, and distinct-n diversity.

* adherence: among the words of an output that belong to the target set T or to a
  contrasting set O, the share from T, ``|w ∈ T| / (|w ∈ T| + |w ∈ O|)`` (e.g. French
  versus English function words for "answer in French"); with no contrast set, the
  share of all words that are in T (a topic vocabulary).
* distinct-n (Li et al., arXiv 1510.03055): unique n-grams over all n-grams of a set of
  outputs; 1 when nothing repeats, small when guidance collapses diversity.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from ..core.numbers import check_int

_WORD = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)?", re.UNICODE)

FRENCH_WORDS = frozenset(
    "le la les un une des du de et est sont être avoir ont en dans pour par sur avec sans ce cette ces il elle "
    "ils elles nous vous je tu que qui quoi où mais ou donc car ne pas plus très aussi comme au aux son sa ses "
    "leur leurs notre votre mon ma mes fait faire peut peuvent bien tout tous toutes entre après avant lorsque "
    "parce quand si se sont c'est d'un d'une l'eau était oui non beaucoup souvent toujours".split()
)
ENGLISH_WORDS = frozenset(
    "the a an and is are be been being have has had of to in on for with without by this that these those it its "
    "they them their we you i he she his her our your my not no yes but or so because when if as at from into "
    "about also very more most can could will would should do does did all some many often always there here "
    "which who what where how".split()
)


def words(text: str) -> list[str]:
    """Lower-cased alphabetic words (apostrophes kept inside words, as in French ``c'est``)."""
    return [w.replace("’", "'") for w in _WORD.findall(text.lower())]


def adherence(text: str, target: Iterable[str], contrast: Iterable[str] | None = None) -> float:
    """Share of target words, as defined in the module docstring; 0 for text without counted words."""
    target = frozenset(target)
    ws = words(text)
    hits = sum(w in target for w in ws)
    if contrast is None:
        return hits / len(ws) if ws else 0.0
    contrast = frozenset(contrast)
    other = sum(w in contrast and w not in target for w in ws)
    return hits / (hits + other) if hits + other else 0.0


def distinct_n(texts: Sequence[str], n: int = 2) -> float:
    """Distinct-n over a set of texts: unique word n-grams / all word n-grams (0 if none)."""
    check_int("n", n, lo=1)
    grams = [tuple(ws[i : i + n]) for ws in map(words, texts) for i in range(len(ws) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0
