"""The scale of an answer: ``""``, ``thousand``, ``million``, ``billion`` or ``percent``.

TAT-QA scores an answer with its scale (``1,452`` in thousands is 1,452,000), and a reader
needs it too. Tables rarely say it in a fixed place: ``($ in millions)`` in a corner cell,
``$'000`` over a column, ``(in thousands)`` in the sentence before the table, or nowhere (the
annotators read the PDF). Two predictors:

- :func:`rule_scale`, by rule: ``percent`` for a percentage question whose program ends by
  multiplying or dividing (or for percentage cells), ``""`` for a ratio of two amounts or a
  year or word read from the table, else the scale the table states most often, else the one
  the text states most often, else ``""``;
- :class:`ScaleModel`: one logistic regression per scale (:mod:`logistic`) over the rule's
  guess and :data:`FEATURES` (where scale words are stated, how large the table's numbers
  are, what the program ends with), fitted on TAT-QA's training questions (their gold programs
  and cell answers) and stored as ``scale.json`` beside the generator. A folder without one
  uses the rule.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vfm.platform.errors import VfmError
from vfm.platform.fileio import atomic_write_json
from vfm.plugins.finance.answers.lookup import answer_cells, header_rows
from vfm.plugins.finance.data.records import SCALES, QARecord
from vfm.plugins.finance.generation.features import is_year_word
from vfm.plugins.finance.language.numbers import finqa_str_to_num, parse_number
from vfm.plugins.finance.language.program import Step, parse_program
from vfm.plugins.finance.retrieval.logistic import (
    LogisticModel,
    fit_logistic,
    logistic_from_json,
    logistic_to_json,
    read_scorer_json,
)

FILE = "scale.json"
_FORMAT = "vfm-finance-scale/1"
MIN_QUESTIONS = 50
"""The fewest TAT-QA training questions a scale model is fitted on; with fewer, the rule is used."""
_PERCENT_QUESTION = re.compile(r"\bpercent|\bpercentage\b|%|\bproportion\b|\brate\b")
_SCALE_WORDS = (
    ("billion", "billion"),
    ("million", "million"),
    ("thousand", "thousand"),
    ("'000", "thousand"),
    ("\u2019000", "thousand"),
    ("000s", "thousand"),
)
"""Words that state a document's scale, and the scale they state (the rule counts them)."""
_STATED = {
    "thousand": re.compile(r"in thousands|\(thousands|'000|\u2019000|000s|\$000|thousands of"),
    "million": re.compile(r"in millions|\(millions|millions of|\$m\b|\bm\b"),
    "billion": re.compile(r"in billions|billions of|\$bn|\bbn\b"),
}
"""How a heading states a scale."""
_ENDINGS = ("add", "subtract", "multiply", "divide", "cell")
FEATURES = (
    "bias",
    *(f"rule_{s or 'none'}" for s in SCALES),
    *(f"ends_{e}" for e in _ENDINGS),
    "divides_by_count",
    "percentage_question",
    *(
        f"{s}_{where}"
        for s in ("thousand", "million", "billion")
        for where in ("stated_in_headings", "stated_in_table", "stated_in_text", "words_in_text", "in_question")
    ),
    "table_magnitude",
    "table_has_dollars",
    "cells_are_percentages",
    "cells_are_not_amounts",
)


def rule_scale(
    question: str,
    table: Sequence[Sequence[str]],
    texts: Sequence[str],
    *,
    program: str | None = None,
    spans: Sequence[str] | None = None,
) -> str:
    """The scale by rule (see the module docstring) of a program's answer, or of the table
    cells ``spans`` when the answer is read from the table."""
    if spans is not None:
        if spans and all("%" in span for span in spans):
            return "percent"
        if all(parse_number(span) is None or is_year_word(span.strip()) for span in spans):
            return ""
    else:
        last = _last_step(program)
        op = last.op if last else ""
        if _PERCENT_QUESTION.search(question.lower()) and op in ("multiply", "divide"):
            return "percent"
        if last is not None and op == "divide" and not _is_count(last.args[1]):
            return ""
    for text in (" ".join(cell for row in table for cell in row), " ".join(texts)):
        text = text.lower()
        counts = Counter({scale: 0 for _, scale in _SCALE_WORDS})
        for word, scale in _SCALE_WORDS:
            counts[scale] += text.count(word)
        scale, count = counts.most_common(1)[0]
        if count:
            return scale
    return ""


def _last_step(program: str | None) -> Step | None:
    """A program's last step; None without a program, or for one that does not parse."""
    try:
        return parse_program(program)[-1] if program else None
    except VfmError:
        return None


def _is_count(argument: str) -> bool:
    """Whether a divisor is a constant or a whole number up to 12 (an average's count)."""
    value = finqa_str_to_num(argument)
    return argument.startswith("const_") or (value is not None and value == int(value) and 1 < value <= 12)


def scale_features(
    question: str,
    table: Sequence[Sequence[str]],
    texts: Sequence[str],
    *,
    program: str | None = None,
    spans: Sequence[str] | None = None,
) -> np.ndarray:
    """``[len(FEATURES)]`` features of an answer's scale (a program's, or of cells ``spans``)."""
    rule = rule_scale(question, table, texts, program=program, spans=spans)
    last = _last_step(program)
    ending = "cell" if spans is not None else (last.op if last else "")
    heads = header_rows(table) if table else 0
    headings = " ".join([*(cell for row in table[:heads] for cell in row), *(row[0] for row in table if row)]).lower()
    whole_table = " ".join(cell for row in table for cell in row).lower()
    text = " ".join(texts).lower()
    asked = question.lower()
    stated = []
    for scale in ("thousand", "million", "billion"):
        stated += [
            float(bool(_STATED[scale].search(headings))),
            float(bool(_STATED[scale].search(whole_table))),
            float(bool(_STATED[scale].search(text))),
            float(np.log1p(text.count(scale))),
            float(scale in asked),
        ]
    amounts = [
        abs(v)
        for row in table[heads:]
        for cell in row[1:]
        if "%" not in cell and (v := parse_number(cell)) is not None and v != 0
    ]
    cells = list(spans or [])
    return np.array(
        [
            1.0,
            *(float(rule == s) for s in SCALES),
            *(float(ending == e) for e in _ENDINGS),
            float(ending == "divide" and last is not None and _is_count(last.args[1])),
            float(bool(_PERCENT_QUESTION.search(asked))),
            *stated,
            float(np.log10(np.median(amounts))) / 5 if amounts else 0.0,
            float("$" in whole_table),
            float(bool(cells) and all("%" in c for c in cells)),
            float(bool(cells) and all(parse_number(c) is None or is_year_word(c.strip()) for c in cells)),
        ]
    )


class ScaleModel:
    """One logistic regression per scale; the answer's scale is the most probable."""

    def __init__(self, models: dict[str, LogisticModel]):
        self.models = models

    def predict(
        self,
        question: str,
        table: Sequence[Sequence[str]],
        texts: Sequence[str],
        *,
        program: str | None = None,
        spans: Sequence[str] | None = None,
    ) -> str:
        """The scale of a program's answer, or of the cells ``spans``."""
        x = scale_features(question, table, texts, program=program, spans=spans)[None]
        return max(SCALES, key=lambda s: float(self.models[s].logits(x)[0]))

    def save(self, path: str | Path, **report: Any) -> Path:
        """Write the model (and a ``report`` of how it was fitted) as JSON, atomically."""
        return atomic_write_json(
            path,
            {
                "format": _FORMAT,
                "features": list(FEATURES),
                "report": report,
                "models": {s: logistic_to_json(m) for s, m in self.models.items()},
            },
        )

    @classmethod
    def load(cls, path: str | Path) -> ScaleModel:
        """Read a file written by :meth:`save`.

        Raises:
            VfmError: unreadable, of another version or features, or damaged.
        """
        path = Path(path)
        refit = "retrain the run with this version of vfm ('vfm finetune finance')"
        data = read_scorer_json(
            path, _FORMAT, what="scale model", written_by=refit, refit=refit, expected={"features": list(FEATURES)}
        )
        try:
            models = {s: logistic_from_json(data["models"][s]) for s in SCALES}
        except (KeyError, TypeError, ValueError) as err:
            raise VfmError(f"the scale model file is damaged: {err}", where=str(path), fix=refit) from None
        if any(len(m.weights) != len(FEATURES) for m in models.values()):
            raise VfmError("the scale model's weights do not fit its features", where=str(path), fix=refit)
        return cls(models)


def scale_examples(records: Sequence[QARecord]) -> list[tuple[QARecord, str | None, list[str] | None]]:
    """``(record, program, cell texts)`` of each TAT-QA record with a known answer scale: its gold
    program (arithmetic), or the cells its answer is (:func:`lookup.answer_cells`)."""
    examples: list[tuple[QARecord, str | None, list[str] | None]] = []
    for record in records:
        if record.source != "tatqa":
            continue
        if record.answer_type == "arithmetic" and record.program:
            examples.append((record, record.program, None))
        elif cells := answer_cells(record):
            examples.append((record, None, [record.table[r][c] for r, c in cells]))
    return examples


def fit_scale_model(records: Sequence[QARecord], *, l2: float = 1.0) -> tuple[ScaleModel | None, dict[str, Any]]:
    """Fit on the TAT-QA questions among ``records`` (:func:`scale_examples`).

    Returns:
        ``(model, report)``: None (the report says why) with fewer than :data:`MIN_QUESTIONS`.
    """
    examples = scale_examples(records)
    report: dict[str, Any] = {"questions": len(examples)}
    if len(examples) < MIN_QUESTIONS:
        return None, report | {"kept": False, "why": f"fewer than {MIN_QUESTIONS} TAT-QA training questions"}
    x = np.stack(
        [scale_features(r.question, r.table, [*r.pre_text, *r.post_text], program=p, spans=s) for r, p, s in examples]
    )
    labels = [r.scale for r, _, _ in examples]
    models = {s: fit_logistic(x, np.array([label == s for label in labels], dtype=np.float64), l2=l2) for s in SCALES}
    return ScaleModel(models), report | {"kept": True, "by_scale": dict(Counter(labels))}
