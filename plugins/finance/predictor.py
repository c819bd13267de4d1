"""The finance bundle's predictor: a question over a report excerpt in, the answer, the
program that computes it (each step's value) or the table cells it is read from, the
evidence it read and a confidence out.

Torch-free (onnxruntime, numpy, ``tokenizers``, ``bm25s``). Inputs are a mapping or a JSON
file: ``{"question", "table", "pre_text", "post_text", "history"}`` where ``table`` is rows
of cells (header first, row names in the first column) or pasted text (CSV, TSV, markdown),
and the texts are lists of sentences or one string; or a file holding one FinQA / TAT-QA /
ConvFinQA question.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from vfm.platform.bad_input import BadInput
from vfm.platform.bundle import Bundle
from vfm.platform.errors import VfmError
from vfm.platform.plugin import Plugin
from vfm.plugins.finance.answers.lookup import column_name
from vfm.plugins.finance.bad_inputs import finance_bad_inputs
from vfm.plugins.finance.data.table_text import parse_table
from vfm.plugins.finance.generation.decode import ProgramPredictor, document_units
from vfm.plugins.finance.language.executor import trace

MAX_CONTEXT_CHARS = 100_000
"""The longest text (before + after the table) accepted; annual-report pages are a few thousand."""
MAX_QUESTION_CHARS = 1_000
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9$(])")
_PERCENT_QUESTION = re.compile(r"percent|%|\bproportion\b|\brate\b", re.IGNORECASE)
"""Questions whose fraction answers read as percentages. Not "ratio": all 10 ratio questions of FinQA's
dev sample are answered as plain numbers (1.16, 4.9, 0.75), never as percentages."""


class FinancePredictor:
    """Answer questions with a finance bundle (see :meth:`predict`)."""

    def __init__(self, bundle: Bundle, plugin: Plugin):
        self.bundle = bundle
        self.plugin = plugin
        self.model = ProgramPredictor(bundle.path)

    def predict(self, source: Any) -> dict[str, Any]:
        """One question -> ``{"answer", "display", "scale", "kind", "program", "steps", "cells",
        "confidence", "evidence", "beams", "no_answer_reason"}``.

        ``scale`` is the answer's (``""``, ``thousand``, ``million``, ``billion``, ``percent``;
        :mod:`scale`), and ``display`` the answer with it, as a person reads it.

        ``kind`` is ``"program"``, ``"lookup"`` (the answer is read from table cells, when the
        bundle's table lookup says the question asks for them) or ``"text"`` (a sentence of the
        report, when its text answerer says the answer is text). A program's ``answer`` is a float
        or ``"yes"``/``"no"`` (None when no decoded program runs, with ``no_answer_reason`` saying
        why), and ``steps`` lists ``{"ref": "#i", "op", "args", "value"}``; a lookup's is the cell's
        text or a list of the cells' texts, with ``cells`` ``[{"row", "column", "row_name",
        "column_name", "text"}]`` (table positions, the header is row 0); a text answer's is the
        sentence. ``evidence`` is every sentence and table row in document order, ``{"id", "text",
        "rank", "score", "used"}`` (rank 1: the retriever's best; ``used``: read by the generator,
        holding a cell read, or holding the sentence).
        """
        question, table, pre_text, post_text, history = read_question(source)
        prediction = self.model.predict(question, table, pre_text, post_text, history)
        units, _ = document_units(table, [*pre_text, *post_text])
        used = set(prediction.evidence)
        rank = {ident: i + 1 for i, (ident, _) in enumerate(prediction.ranking)}
        score = dict(prediction.ranking)
        steps: list[dict[str, Any]] = []
        if prediction.answer is not None and prediction.program:
            steps = [
                {"ref": f"#{i}", "op": s.op, "args": list(s.args), "value": s.value}
                for i, s in enumerate(trace(prediction.program, table))
            ]
        cells = [
            {"row": r, "column": c, "row_name": table[r][0], "column_name": column_name(table, c), "text": table[r][c]}
            for r, c in prediction.cells
        ]
        return {
            "question": question,
            "answer": list(prediction.answer) if isinstance(prediction.answer, tuple) else prediction.answer,
            "display": display_answer(prediction.answer, question, prediction.scale),
            "scale": prediction.scale,
            "kind": prediction.kind,
            "program": prediction.program,
            "steps": steps,
            "cells": cells,
            "confidence": prediction.confidence,
            "evidence": [
                {"id": ident, "text": units[ident], "rank": rank[ident], "score": score[ident], "used": ident in used}
                for ident in _document_order(len(pre_text), table, post_text)
            ],
            "beams": [{"program": program, "probability": p} for program, p in prediction.beams],
            "no_answer_reason": prediction.error,
        }

    def bad_inputs(self, folder: Path) -> list[BadInput]:
        """Wrong questions and documents (:func:`vfm.plugins.finance.bad_inputs.finance_bad_inputs`)."""
        return finance_bad_inputs(folder)

    def smoke_inputs(self) -> list[Any]:
        """Arguments of the demo's ``/<name>_predict`` endpoint for the first example."""
        question, table, pre_text, post_text, _ = read_question(self.bundle.examples()[0])
        return [
            "\n".join(pre_text),
            "\n".join(",".join(_csv_cell(c) for c in row) for row in table),
            "\n".join(post_text),
            question,
        ]


def _document_order(n_pre: int, table: Sequence[Sequence[str]], post_text: Sequence[str]) -> list[str]:
    """Evidence ids as the document reads: sentences before, table rows, sentences after."""
    return (
        [f"text_{i}" for i in range(n_pre)]
        + [f"table_{i}" for i in range(len(table))]
        + [f"text_{n_pre + i}" for i in range(len(post_text))]
    )


def display_answer(answer: float | str | tuple[str, ...] | None, question: str, scale: str = "") -> str:
    """The answer as a person reads it, with its scale: ``"yes"``, ``"1,452.5 million"``,
    ``"0.052 (5.20 %)"``, ``"12.5 %"``, or table cells' texts (``"$ 64,798; $ 35,452 thousand"``)."""
    if answer is None:
        return "no answer"
    unit = f" {scale}" if scale in ("thousand", "million", "billion") else ""
    if isinstance(answer, tuple) or (isinstance(answer, str) and answer not in ("yes", "no")):
        cells = "; ".join(answer) if isinstance(answer, tuple) else answer
        return cells + (unit if any(c.isdigit() for c in cells) else "")
    if isinstance(answer, str):
        return answer
    text = format_number(answer)
    if scale == "percent" and abs(answer) >= 1:
        return text + " %"
    if _PERCENT_QUESTION.search(question) and abs(answer) < 10:
        return text + f" ({answer * 100:.2f} %)"
    return text + unit


def format_number(value: float) -> str:
    """``1452.5`` -> ``"1,452.5"``: thousands separated, at most 5 decimals (FinQA's rounding)."""
    return f"{value:,.5f}".rstrip("0").rstrip(".")


def read_question(source: Any) -> tuple[str, list[list[str]], list[str], list[str], list[str]]:
    """``(question, table, pre_text, post_text, history)`` from a mapping or a JSON file, checked.

    Raises:
        VfmError: unreadable file, no question, an empty/ragged/number-free table, or text
            longer than :data:`MAX_CONTEXT_CHARS`.
    """
    if isinstance(source, (str, Path)):
        return _read_file(Path(source))
    if not isinstance(source, Mapping):
        raise VfmError(
            f"cannot read a question from {type(source).__name__}",
            fix="pass a mapping with question and table, or a JSON file",
        )
    question = source.get("question")
    if question is not None and not isinstance(question, str):
        raise VfmError(
            f"the question must be text, not {type(question).__name__}",
            where="question",
            fix='give the question as a string, e.g. "what was the change in revenue from 2019 to 2020?"',
        )
    question = ascii_digits(question or "").strip()
    if not question:
        raise VfmError(
            "the question is empty",
            fix="type a question about the table, e.g. 'what was the change in revenue from 2019 to 2020?'",
        )
    if len(question) > MAX_QUESTION_CHARS:
        raise VfmError(
            f"the question has {len(question):,} characters (at most {MAX_QUESTION_CHARS:,})",
            fix="ask one short question",
        )
    pre_text, post_text = (
        _sentences(source.get("pre_text"), "pre_text"),
        _sentences(source.get("post_text"), "post_text"),
    )
    size = sum(map(len, pre_text + post_text))
    if size > MAX_CONTEXT_CHARS:
        raise VfmError(
            f"the text around the table has {size:,} characters (at most {MAX_CONTEXT_CHARS:,})",
            fix="paste only the section of the report the question is about",
        )
    table = _table(source.get("table"))
    history = source.get("history") or []
    if not isinstance(history, list) or not all(isinstance(turn, str) for turn in history):
        raise VfmError(
            "the history must be a list of the earlier questions (text)",
            where="history",
            fix='pass ["first question", "second question"], oldest first, or leave it out',
        )
    return question, table, pre_text, post_text, [ascii_digits(turn) for turn in history]


def _read_file(path: Path) -> tuple[str, list[list[str]], list[str], list[str], list[str]]:
    if path.is_dir():
        raise VfmError("expected a JSON file but got a folder", where=str(path), fix="pass one question's JSON file")
    if not path.is_file():
        raise VfmError("input file not found", where=str(path), fix="pass an existing JSON file")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise VfmError(
            f"not a JSON file: {err}",
            where=str(path),
            fix="pass a JSON object with question and table (see the bundle's examples/)",
        ) from None
    if isinstance(data, Mapping) and "question" in data:
        return read_question(data)
    if not isinstance(data, (Mapping, list)) or (
        isinstance(data, list) and not all(isinstance(x, Mapping) for x in data)
    ):
        raise VfmError(
            f"the JSON file holds {_json_kind(data)}, not a question",
            where=str(path),
            fix='pass a JSON object with "question" and "table" (see the bundle\'s examples/), or one FinQA / TAT-QA / '
            "ConvFinQA record",
        )
    if isinstance(data, Mapping) and not any(key in data for key in ("qa", "questions", "dialogue", "annotation")):
        raise VfmError(
            "the JSON object has no question",
            where=str(path),
            fix='add "question" (and "table"), as in the bundle\'s examples/, or pass a FinQA / TAT-QA / ConvFinQA file',
        )
    from vfm.plugins.finance.data.loaders import load_any

    records = load_any(path)
    if len(records) != 1:
        raise VfmError(
            f"the file holds {len(records)} questions; predict takes one",
            where=str(path),
            fix="score a dataset with 'vfm evaluate finance --data FILE'",
        )
    r = records[0]
    return read_question(
        {
            "question": r.question,
            "table": r.table,
            "pre_text": r.pre_text,
            "post_text": r.post_text,
            "history": r.history,
        }
    )


def _json_kind(data: Any) -> str:
    """``"a number"``, ``"a list of 3 numbers and text"``, ``"null"``: what a JSON value is, for errors."""
    names = {str: "text", bool: "true/false", int: "a number", float: "a number", type(None): "null", list: "a list"}
    if isinstance(data, list):
        kinds = sorted({names.get(type(x), "an object") for x in data})
        return f"a list of {len(data)} items ({', '.join(kinds)})"
    return names.get(type(data), type(data).__name__)


def _sentences(value: Any, name: str) -> list[str]:
    """A list of sentences from a list or a block of text (split at sentence ends and lines)."""
    if value is None:
        return []
    if isinstance(value, str):
        value = ascii_digits(value)
        return [s.strip() for line in value.splitlines() for s in _SENTENCE_END.split(line) if s.strip()]
    if isinstance(value, Sequence):
        bad = next((s for s in value if not isinstance(s, (str, int, float))), None)
        if bad is not None:
            raise VfmError(
                f"{name} holds a {type(bad).__name__}, not a sentence",
                where=name,
                fix="pass text or a list of sentences",
            )
        return [ascii_digits(str(s)).strip() for s in value if str(s).strip()]
    raise VfmError(f"{name} must be text or a list of sentences, not {type(value).__name__}", where=name)


def _table(value: Any) -> list[list[str]]:
    if value is None or (isinstance(value, str) and not value.strip()):
        raise VfmError(
            "the table is empty",
            where="table",
            fix="paste the table as CSV or markdown, the header row first and row names in column 1",
        )
    if isinstance(value, str):
        return parse_table(ascii_digits(value))
    if not isinstance(value, Sequence) or not all(
        isinstance(row, Sequence) and not isinstance(row, str) for row in value
    ):
        raise VfmError("the table must be rows of cells", where="table", fix="pass [[header...], [row...], ...]")
    for r, row in enumerate(value):
        for c, cell in enumerate(row):
            if cell is not None and (isinstance(cell, bool) or not isinstance(cell, (str, int, float))):
                raise VfmError(
                    f"the cell in row {r}, column {c} is a {type(cell).__name__}, not text or a number",
                    where="table",
                    fix="give every cell as text or a number (null for an empty cell)",
                )
    rows = [[" ".join(ascii_digits("" if cell is None else str(cell)).split()) for cell in row] for row in value]
    return parse_table("\n".join(",".join(_csv_cell(c) for c in row) for row in rows))


_DIGITS = {
    **{
        code: str(unicodedata.digit(chr(code)))
        for code in range(0x80, 0x10000)
        if unicodedata.category(chr(code)) == "Nd"
    },
    0x066B: ".",  # ARABIC DECIMAL SEPARATOR
    0x066C: "",  # ARABIC THOUSANDS SEPARATOR (dropped, not a comma: a comma would split a CSV cell)
}


def ascii_digits(text: str) -> str:
    """Digits of every script as ASCII (``"١٢٠٫٥"`` -> ``"120.5"``), so a number is read whole or not at all."""
    return text.translate(_DIGITS)


def _csv_cell(cell: str) -> str:
    return '"' + cell.replace('"', '""') + '"' if any(c in cell for c in ',"\n') else cell
