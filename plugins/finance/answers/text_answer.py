"""Answers that are a sentence of the report: "Why did revenue grow?", "How is X calculated?".

TAT-QA asks many questions whose answer is a phrase of the text. Without a pretrained reader a
phrase cannot be cut out reliably from the few hundred training examples here (a span scorer tried
on them did worse than the whole sentence), so the answer is the sentence that holds it: the
sentence of the retriever's best paragraph that shares most of the question's words (a learned
sentence scorer over the two best paragraphs, with cause and position cues, did no better on the
training documents; both comparisons: docs/log/finance.md, 'Text answers'). A *router*
(a numpy logistic regression over the question's words and word pairs, as the table lookup reads
them, and four retrieval cues: how likely the best sentence and the best table row are evidence,
and how much of the question the best sentence holds) decides whether the answer is text.

Stored as ``text_answer.json`` beside the generator; a folder without one never answers with a
sentence. Fitted with the table lookup (:mod:`answer_fitting`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vfm.platform.errors import VfmError
from vfm.platform.fileio import atomic_write_json
from vfm.plugins.finance.answers.lookup import QuestionWords, answer_cells
from vfm.plugins.finance.data.records import QARecord
from vfm.plugins.finance.generation.features import content_words
from vfm.plugins.finance.retrieval.logistic import (
    LogisticModel,
    fit_logistic,
    logistic_from_json,
    logistic_to_json,
    read_scorer_json,
)

FILE = "text_answer.json"
_FORMAT = "vfm-finance-text-answer/1"
CUES = ("best_sentence_probability", "best_row_probability", "sentence_minus_row", "question_words_in_sentence")
MIN_POSITIVES = 20
"""The fewest text-answer training questions a router is fitted on; with fewer, none is kept."""
THRESHOLD = 0.7
"""The router's probability above which the answer is a sentence. Chosen on the selection documents
and on half of the answer-only FinQA questions (fitted on the other half): at 0.7 rather than 0.5
far fewer FinQA number questions go to text, while TAT-QA text answers still do (the counts:
docs/log/finance.md, 'Text answers')."""
_SENTENCE_END = re.compile(r"(?<=[.;:])\s+(?=[A-Z(\u201c\"$0-9])")


@dataclass(frozen=True)
class TextAnswer:
    """A sentence that answers a question.

    Attributes:
        sentence: the sentence.
        unit: the evidence id of the paragraph it is in (``text_3``).
        probability: the router's probability that the answer is text.
    """

    sentence: str
    unit: str
    probability: float


def best_sentence(
    question: str, units: Mapping[str, str], ranking: Sequence[tuple[str, float]]
) -> tuple[str, str, float] | None:
    """``(sentence, unit id, share of the question's words it holds)``: of the best-ranked text
    unit, the sentence sharing most of the question's content words; None without text units."""
    unit = next((ident for ident, _ in ranking if ident.startswith("text_")), None)
    if unit is None:
        return None
    asked = set(content_words(question))
    sentences = [s.strip() for s in _SENTENCE_END.split(units[unit]) if s.strip()] or [units[unit]]
    overlaps = [len(asked & set(content_words(s))) for s in sentences]
    best = int(np.argmax(overlaps))
    return sentences[best], unit, overlaps[best] / max(len(asked), 1)


def text_cues(ranking: Sequence[tuple[str, float]], found: tuple[str, str, float] | None) -> np.ndarray:
    """``[len(CUES)]`` retrieval cues of a question (see the module docstring), from the units'
    ``ranking`` and the question's :func:`best_sentence` ``found``."""
    score = dict(ranking)
    sentence = max((score[i] for i in score if i.startswith("text_")), default=0.0)
    row = max((score[i] for i in score if i.startswith("table_")), default=0.0)
    return np.array([sentence, row, sentence - row, found[2] if found else 0.0])


def router_input(
    words: QuestionWords,
    question: str,
    table: Sequence[Sequence[str]],
    ranking: Sequence[tuple[str, float]],
    found: tuple[str, str, float] | None,
) -> np.ndarray:
    """``[1 + V + len(CUES)]``: a bias, the question's vocabulary words (and pairs), the cues."""
    return np.concatenate([words.vector(question, table), text_cues(ranking, found)])


class TextAnswerer:
    """The fitted router (see the module docstring)."""

    def __init__(self, words: QuestionWords, router: LogisticModel):
        self.words, self.router = words, router

    def answer(
        self,
        question: str,
        table: Sequence[Sequence[str]],
        units: Mapping[str, str],
        ranking: Sequence[tuple[str, float]],
    ) -> TextAnswer | None:
        """The sentence that answers ``question``, or None when the router says the answer is
        not text (or the document has no text).

        Args:
            units: the document's evidence units by id (:func:`decode.document_units`).
            ranking: ``(unit id, retriever score)``, best first.
        """
        found = best_sentence(question, units, ranking)
        vector = router_input(self.words, question, table, ranking, found)
        probability = float(self.router.probabilities(vector[None])[0])
        if probability < THRESHOLD or found is None:
            return None
        return TextAnswer(found[0], found[1], probability)

    def save(self, path: str | Path, **report: Any) -> Path:
        """Write the router (and a ``report`` of how it was fitted) as JSON, atomically."""
        return atomic_write_json(
            path,
            {
                "format": _FORMAT,
                "cues": list(CUES),
                "vocabulary": self.words.vocabulary,
                "router": logistic_to_json(self.router),
                "report": report,
            },
        )

    @classmethod
    def load(cls, path: str | Path) -> TextAnswerer:
        """Read a file written by :meth:`save`.

        Raises:
            VfmError: unreadable, of another version, or damaged.
        """
        path = Path(path)
        refit = f"refit it: re-run 'vfm finetune finance --out {path.parent}' (a finished run resumes at its end)"
        data = read_scorer_json(
            path, _FORMAT, what="text answerer", written_by=refit, refit=refit, expected={"cues": list(CUES)}
        )
        try:
            words = QuestionWords([str(word) for word in data["vocabulary"]])
            answerer = cls(words, logistic_from_json(data["router"]))
        except (KeyError, TypeError, ValueError) as err:
            raise VfmError(f"the text answerer file is damaged: {err}", where=str(path), fix=refit) from None
        if len(answerer.router.weights) != len(answerer.words) + 1 + len(CUES):
            raise VfmError("the text answerer's weights do not fit its features", where=str(path), fix=refit)
        return answerer


def answer_is_text(record: QARecord) -> bool:
    """Whether a record's gold answer is a span (or spans) of its text and not table cells."""
    if record.answer_type not in ("span", "multi-span") or answer_cells(record) is not None:
        return False
    text = " ".join([*record.pre_text, *record.post_text]).lower()
    spans = record.answer_spans or [str(record.answer)]
    return all(" ".join(span.lower().split()) in " ".join(text.split()) for span in spans)


def fit_text_answerer(
    records: Sequence[QARecord], retriever: Any, *, l2: float = 3.0
) -> tuple[TextAnswerer | None, dict[str, Any]]:
    """Fit the router on ``records`` (positives: :func:`answer_is_text`), ranking each
    document's units with ``retriever`` (an :class:`EvidenceRetriever`). Questions known to want
    a number (FinQA's answer-only ones) are worth adding as negatives: FinQA's long texts make its
    questions look like text questions to the retrieval cues (docs/log/finance.md, 'Text answers').

    Returns:
        ``(answerer, report)``: None (the report says why) with fewer than :data:`MIN_POSITIVES`.
    """
    from vfm.plugins.finance.generation.decode import document_units

    labels = np.array([answer_is_text(r) for r in records], dtype=np.float64)
    report: dict[str, Any] = {"questions": len(records), "text_answers": int(labels.sum())}
    if labels.sum() < MIN_POSITIVES:
        return None, report | {"kept": False, "why": f"fewer than {MIN_POSITIVES} training answers are text"}
    words = QuestionWords.fit(records)
    inputs = []
    for record in records:
        units, rows = document_units(record.table, [*record.pre_text, *record.post_text])
        ranking = retriever.score_units(record.question, units, rows, len(record.pre_text))
        found = best_sentence(record.question, units, ranking)
        inputs.append(router_input(words, record.question, record.table, ranking, found))
    router = fit_logistic(np.stack(inputs), labels, l2=l2, standardise=False)
    return TextAnswerer(words, router), report | {"kept": True, "vocabulary": len(words)}
