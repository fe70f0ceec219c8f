"""The text section's prompts: questions with known short answers, and the attributes asked of them.

Each attribute is a condition/reference pair over the same question, as in Sanchez et al.
(arXiv 2306.17806) and context-aware decoding (Shi et al., arXiv 2305.14739): the condition
is the question with an instruction, the reference the bare question, or — the negative-prompt
case — the question with the opposite instruction, so guidance steers away from it.
Each attribute has an outside judge (:mod:`~unified_guidance.evaluation.judges`).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..evaluation.judges import Judge, judge_from


@dataclass(frozen=True)
class Question:
    """A question and the spellings of its answer that count as "content kept" (any language)."""

    text: str
    answers: tuple[str, ...]


QUESTIONS: tuple[Question, ...] = (
    Question("What is the capital of Italy?", ("Rome", "Roma")),
    Question("What do bees make?", ("honey", "miel")),
    Question("What color is the sky on a clear day?", ("blue", "bleu", "bleue")),
    Question("How many legs does a spider have?", ("8", "eight", "huit")),
    Question("What is the largest planet in our solar system?", ("Jupiter",)),
    Question("What is frozen water called?", ("ice", "glace")),
    Question("Which animal is known as the king of the jungle?", ("lion",)),
    Question("What is the opposite of hot?", ("cold", "froid", "froide")),
)
"""Written for the demo; the quick run asks the first three."""


@dataclass(frozen=True)
class Attribute:
    """What guidance should make the answers do.

    Args:
        name: the attribute's name in the report.
        instruction: appended to the question in the condition's user turn.
        judge: ``"fr"``-style language code (py3langid), ``"positive"`` (VADER compound ≥ 0.05),
            ``"regex:PATTERN"``, or a callable ``text -> bool``
            (:func:`~unified_guidance.evaluation.judges.judge_from`).
        negative: appended to the question in the reference's user turn (a negative prompt);
            ``None``: the reference is the bare question.
    """

    name: str
    instruction: str
    judge: str | Judge
    negative: str | None = None

    def condition(self, question: Question) -> str:
        return f"{question.text} {self.instruction}"

    def reference(self, question: Question) -> str:
        return question.text if self.negative is None else f"{question.text} {self.negative}"

    def make_judge(self) -> Judge:
        return judge_from(self.judge)


CHEERFUL = "Answer in a cheerful, enthusiastic tone."

ATTRIBUTES: tuple[Attribute, ...] = (
    Attribute("french", "Answer in French.", "fr"),
    Attribute("cheerful", CHEERFUL, "positive"),
    Attribute("cheerful, not gloomy", CHEERFUL, "positive", negative="Answer in a sad, gloomy tone."),
)
"""Two attributes with a bare-question reference, and the negative-prompt case: the cheerful
condition against a gloomy reference (at s = 1 it samples the same distribution as "cheerful")."""
