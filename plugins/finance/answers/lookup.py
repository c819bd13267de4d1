"""Answers read from the table without arithmetic: the cell, or cells, a question asks for.

TAT-QA asks many questions whose answer is a table cell ("What was the revenue in 2019?" ->
``"$ 64,798"``) or several ("... in 2019 and 2018 respectively?" -> two cells). A program
cannot state such an answer, so a lookup answers them, with three numpy logistic regressions
(:mod:`logistic`) fitted on the training questions whose answers are cells, and rules for years:

- the *router* reads the question's words and word pairs (the table's own words as ``<name>``)
  and how well the best cell matches (:data:`MATCH_FEATURES`), and gives the probability that
  the answer is read from the table; below 1/2 the program generator answers. A second router
  says one cell or several;
- the *cell scorer* rates every cell outside the first column by how its row name and its
  column's header match the question (:data:`CELL_FEATURES`). One cell: the best. Several: in
  the best row, the best cell of each year asked, or else the cells scoring above
  :data:`MULTI_THRESHOLD` of the best;
- a *which year* question reads the header: the year the best row is largest or smallest in,
  the years it passes a stated bound in, or every year; *how many years did X exceed N* (found
  by its words, not by the router: the router learnt *how many* from it and took *how many
  times* questions) counts the years passing the bound.

Stored as ``lookup.json`` in a model folder (and bundle) beside the generator; a folder
without one answers with programs only. A training run fits one; ``python -m
vfm.plugins.finance.answers.answer_fitting --data-dir DATA --model MODEL_DIR`` fits one into an older run.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vfm.platform.errors import VfmError
from vfm.platform.fileio import atomic_write_json
from vfm.plugins.finance.data.records import QARecord
from vfm.plugins.finance.generation.features import STOPWORDS, content_words, is_year_word, split_words
from vfm.plugins.finance.language.numbers import parse_number
from vfm.plugins.finance.retrieval.logistic import (
    LogisticModel,
    fit_logistic,
    logistic_from_json,
    logistic_to_json,
    read_scorer_json,
)

FILE = "lookup.json"
_FORMAT = "vfm-finance-lookup/1"
CELL_FEATURES = (
    "bias",
    "row_words_in_question",
    "question_words_in_row",
    "row_name_quoted",
    "best_row_overlap",
    "column_year_asked",
    "column_year_not_asked",
    "column_words_in_question",
    "first_column_no_year",
    "cell_has_number",
    "cell_is_header",
    "header_year_asked_for_years",
    "row_position",
    "is_first_column",
    "percent_agrees",
)
MATCH_FEATURES = (
    "best_cell_probability",
    "row_name_quoted",
    "column_year_asked",
    "best_row_overlap",
    "percent_agrees",
    "asks_which_year",
)
"""What the router reads besides the question's words: of the best cell, and whether the question
asks *which year*."""
MIN_ROUTER_COUNT = 3
"""A question word (or word pair) is a router feature when at least this many training questions hold it."""
MIN_POSITIVES = 10
"""The fewest cell-answer training questions a lookup is fitted on; with fewer, none is kept."""
MULTI_THRESHOLD = 0.5
"""Several cells: those scoring at least this share of the best cell's probability."""
_YEARS_QUESTION = re.compile(r"\b(which|what) years?\b", re.IGNORECASE)
_COUNT_QUESTION = re.compile(r"\bhow many (?:of the )?(?:years|quarters|periods|months)\b", re.IGNORECASE)
_PERCENT_QUESTION = re.compile(r"%|\bper ?cent|\brate\b|\bratio\b|\bproportion\b|\bmargin\b", re.IGNORECASE)
_MORE = frozenset({"larger", "higher", "more", "greater", "largest", "highest", "most", "bigger", "biggest"})
_COMPARATIVE = re.compile(
    r"\b(larger|higher|more|greater|largest|highest|most|bigger|biggest|smaller|lower|less"
    r"|least|lowest|fewer|smallest)\b(?!\s+than)",
    re.IGNORECASE,
)
_ABOVE = frozenset({"exceed", "exceeded", "exceeds", "above", "over", "more than", "greater than", "higher than"})
_BOUND = re.compile(
    r"\b(exceeds?|exceeded|above|over|more than|greater than|higher than|less than|below|under"
    r"|lower than)\s+(?:\$\s*)?(-?[\d,]*\.?\d+)",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class LookupAnswer:
    """Cells that answer a question.

    Attributes:
        cells: ``(row, column)`` table positions, in table order.
        spans: their texts.
        probability: the router's probability that the answer is read from the table.
        rows: the rows read, in table order: the cells' rows, and for a year the row compared.
        count: the answer is how many years (``spans`` holds the number; ``cells`` the header
            cells counted), for *how many years did X exceed N*.
    """

    cells: tuple[tuple[int, int], ...]
    spans: tuple[str, ...]
    probability: float
    rows: tuple[int, ...] = ()
    count: bool = False


def header_rows(table: Sequence[Sequence[str]]) -> int:
    """How many rows head the table: those before the first row with a name and a number that
    is not a year (at least one, and never every row)."""
    count = 0
    for row in table:
        if (
            row
            and row[0].strip()
            and any(re.search(r"\d", cell) and not is_year_word(cell.strip()) for cell in row[1:])
        ):
            break
        count += 1
    return max(1, min(count, len(table) - 1))


def column_years(table: Sequence[Sequence[str]], heads: int) -> list[tuple[str, tuple[int, int]] | None]:
    """Per column, the year its header names and the header cell holding it, or None. A year
    spans the empty header cells to its right (a merged header over sub-columns)."""
    width = max((len(row) for row in table), default=0)
    years: list[tuple[str, tuple[int, int]] | None] = [None] * width
    for r, row in enumerate(table[:heads]):
        carried = None
        for c in range(1, width):
            cell = row[c].strip() if c < len(row) else ""
            found = next((w for w in split_words(cell) if is_year_word(w)), None)
            carried = (found, (r, c)) if found else (carried if not cell else None)
            if carried and years[c] is None:
                years[c] = carried
    return years


def column_name(table: Sequence[Sequence[str]], column: int) -> str:
    """What the header rows say of a column (``"June 30, 2019"``), their non-empty cells joined."""
    return " ".join(
        row[column].strip() for row in table[: header_rows(table)] if column < len(row) and row[column].strip()
    )


def cell_candidates(question: str, table: Sequence[Sequence[str]]) -> tuple[list[tuple[int, int]], np.ndarray]:
    """Every non-empty cell outside the first column and its features.

    Returns:
        ``(positions, features)``: ``[(row, column)]`` and ``[N, len(CELL_FEATURES)]``.
    """
    heads = header_rows(table)
    asked = set(content_words(question))
    asked_years = {w for w in split_words(question) if is_year_word(w)}
    quoted = question.lower()
    wants_years = _YEARS_QUESTION.search(question) is not None
    wants_percent = _PERCENT_QUESTION.search(question) is not None
    width = max((len(row) for row in table), default=0)
    years = [{year[0]} if year else set() for year in column_years(table, heads)]
    plain = [
        {w for row in table[:heads] if c < len(row) for w in content_words(row[c]) if not is_year_word(w)}
        for c in range(width)
    ]  # a column's header words, years left out
    names = [set(content_words(row[0])) if row else set() for row in table]
    best_overlap = max((len(name & asked) for name in names[heads:]), default=0)
    positions, features = [], []
    for r, row in enumerate(table):
        name = names[r]
        shared = len(name & asked)
        for c in range(1, len(row)):
            cell = row[c].strip()
            if not cell:
                continue
            year = years[c]
            positions.append((r, c))
            features.append(
                [
                    1.0,
                    shared / max(len(name), 1),
                    shared / max(len(asked), 1),
                    float(bool(row and row[0].strip()) and row[0].strip().lower() in quoted),
                    float(r >= heads and shared > 0 and shared == best_overlap),
                    float(bool(year & asked_years)),
                    float(bool(asked_years) and bool(year) and not year & asked_years),
                    len(plain[c] & asked) / max(len(plain[c]), 1),
                    float(not asked_years and c == 1),
                    float(bool(re.search(r"\d", cell))),
                    float(r < heads),
                    float(wants_years and r < heads and is_year_word(cell)),
                    r / len(table),
                    float(c == 1),
                    float(("%" in cell) == wants_percent),
                ]
            )
    return positions, np.asarray(features, dtype=np.float64).reshape(-1, len(CELL_FEATURES))


def answer_cells(record: QARecord) -> list[tuple[int, int]] | None:
    """The cells (outside the first column) whose texts are the record's gold spans, or None
    when some span is not such a cell (texts compared without spaces, in lower case)."""
    if record.answer_type not in ("span", "multi-span"):
        return None
    spans = record.answer_spans or [str(record.answer)]
    found = []
    for span in spans:
        target = _squash(span)
        where = [(r, c) for r, row in enumerate(record.table) for c in range(1, len(row)) if _squash(row[c]) == target]
        if not where:
            return None
        found.append(where[0])
    return found


def _squash(text: str) -> str:
    return re.sub(r"\s+", "", str(text)).lower()


def router_words(question: str, table: Sequence[Sequence[str]]) -> set[str]:
    """The words and adjacent word pairs of a question the router reads (``<start>`` before the
    first word). Years become ``<year>``, other numbers are dropped, and a run of words that name the table's rows or
    columns becomes one ``<name>`` (common words such as *change* or *total* stay), so the router
    learns how a lookup is asked, not which topics were looked up in training."""
    names = {
        w for row in table for cell in (row[:1] + list(row[1:] if row is table[0] else [])) for w in split_words(cell)
    } - STOPWORDS
    words = ["<start>"]
    for word in split_words(question):
        if is_year_word(word):
            words.append("<year>")
        elif re.fullmatch(r"[\d.,%-]+", word):
            continue
        elif word in names:
            if not words or words[-1] != "<name>":
                words.append("<name>")
        else:
            words.append(word)
    return set(words) | {f"{a} {b}" for a, b in zip(words, words[1:], strict=False)}


class QuestionWords:
    """The routers' vocabulary: the words and word pairs (:func:`router_words`) that at least
    :data:`MIN_ROUTER_COUNT` training questions hold."""

    def __init__(self, vocabulary: Sequence[str]):
        self.vocabulary = list(vocabulary)
        self._index = {word: i + 1 for i, word in enumerate(self.vocabulary)}

    @classmethod
    def fit(cls, records: Sequence[QARecord]) -> QuestionWords:
        """The vocabulary of ``records``' questions (each read with its own table)."""
        counts = Counter(word for r in records for word in router_words(r.question, r.table))
        return cls(sorted(word for word, n in counts.items() if n >= MIN_ROUTER_COUNT))

    def __len__(self) -> int:
        return len(self.vocabulary)

    def vector(self, question: str, table: Sequence[Sequence[str]]) -> np.ndarray:
        """``[1 + V]``: a bias, then 1 for each vocabulary word (or pair) the question holds."""
        vector = np.zeros(len(self._index) + 1)
        vector[0] = 1.0
        for word in router_words(question, table):
            if word in self._index:
                vector[self._index[word]] = 1.0
        return vector


def router_inputs(
    words: QuestionWords, cell_scorer: LogisticModel, question: str, table: Sequence[Sequence[str]]
) -> tuple[np.ndarray, list[tuple[int, int]], np.ndarray, np.ndarray]:
    """``(router input [1 + V + M], positions, cell features [N, F], cell probabilities [N])``.

    The router reads a bias, which vocabulary words (and pairs) the question holds, and how
    well the best cell matches it (:data:`MATCH_FEATURES`)."""
    positions, features = cell_candidates(question, table)
    scores = cell_scorer.probabilities(features) if positions else np.zeros(0)
    match = np.zeros(len(MATCH_FEATURES))
    if positions:
        best = features[int(np.argmax(scores))]
        match = np.array(
            [
                scores.max(),
                *(best[CELL_FEATURES.index(n)] for n in MATCH_FEATURES[1:-1]),
                float(_YEARS_QUESTION.search(question) is not None),
            ]
        )
    return np.concatenate([words.vector(question, table), match]), positions, features, scores


class TableLookup:
    """The fitted routers and cell scorer (see the module docstring)."""

    def __init__(
        self,
        words: QuestionWords,
        lookup_router: LogisticModel,
        multi_router: LogisticModel,
        cell_scorer: LogisticModel,
    ):
        self.words = words
        self.lookup_router, self.multi_router, self.cell_scorer = lookup_router, multi_router, cell_scorer

    def answer(self, question: str, table: Sequence[Sequence[str]]) -> LookupAnswer | None:
        """The cells that answer ``question`` (or how many years pass a bound), or None when the
        router sends it to the generator, the table has no cell outside its first column, or a
        year is asked for and the header names none that fits."""
        vector, positions, features, scores = router_inputs(self.words, self.cell_scorer, question, table)
        probability = float(self.lookup_router.probabilities(vector[None])[0])
        count = _COUNT_QUESTION.search(question) is not None and _BOUND.search(question) is not None
        if (probability < 0.5 and not count) or not positions:
            return None
        several = float(self.multi_router.probabilities(vector[None])[0]) >= 0.5
        compared = None
        if count or _YEARS_QUESTION.search(question):
            chosen, compared = _years(question, table, positions, scores, several or count)
            if not chosen:  # a year is asked for, and the header names none that fits
                return None
        else:
            best = int(np.argmax(scores))
            chosen = _several(table, positions, features, scores, best) if several else [positions[best]]
        chosen = sorted(set(chosen))
        rows = sorted({r for r, _ in chosen} | ({compared} if compared is not None else set()))
        spans = (str(len(chosen)),) if count else tuple(table[r][c].strip() for r, c in chosen)
        return LookupAnswer(tuple(chosen), spans, probability, tuple(rows), count=count)

    def save(self, path: str | Path, **report: Any) -> Path:
        """Write the lookup (and a ``report`` of how it was fitted) as JSON, atomically."""
        return atomic_write_json(
            path,
            {
                "format": _FORMAT,
                "cell_features": list(CELL_FEATURES),
                "match_features": list(MATCH_FEATURES),
                "vocabulary": self.words.vocabulary,
                "lookup_router": logistic_to_json(self.lookup_router),
                "multi_router": logistic_to_json(self.multi_router),
                "cell_scorer": logistic_to_json(self.cell_scorer),
                "report": report,
            },
        )

    @classmethod
    def load(cls, path: str | Path) -> TableLookup:
        """Read a file written by :meth:`save`.

        Raises:
            VfmError: missing, unreadable, or written for other features.
        """
        path = Path(path)
        refit = f"refit it: re-run 'vfm finetune finance --out {path.parent}' (a finished run resumes at its end)"
        data = read_scorer_json(
            path,
            _FORMAT,
            what="table lookup",
            written_by=refit,
            refit=refit,
            expected={"cell_features": list(CELL_FEATURES), "match_features": list(MATCH_FEATURES)},
        )
        try:
            models = [logistic_from_json(data[key]) for key in ("lookup_router", "multi_router", "cell_scorer")]
            lookup = cls(QuestionWords([str(word) for word in data["vocabulary"]]), *models)
        except (KeyError, TypeError, ValueError) as err:
            raise VfmError(f"the table lookup file is damaged: {err}", where=str(path), fix=refit) from None
        inputs = len(lookup.words) + 1 + len(MATCH_FEATURES)
        if any(len(m.weights) != inputs for m in models[:2]) or len(models[2].weights) != len(CELL_FEATURES):
            raise VfmError("the table lookup's weights do not fit its features", where=str(path), fix=refit)
        return lookup


def _years(
    question: str, table: Sequence[Sequence[str]], positions: list[tuple[int, int]], scores: np.ndarray, several: bool
) -> tuple[list[tuple[int, int]], int | None]:
    """The header cells of the years a "which year(s)" question asks for, and the row compared:
    the year the best row is largest or smallest in (*larger*, *lowest*, ...), the years it passes
    a stated bound in (*exceed $5 million*), or every year (no row); none when the table names no
    year, or when a comparison is asked and the best row has no value in a year's column."""
    heads = header_rows(table)
    years = column_years(table, heads)
    columns = [c for c, year in enumerate(years) if year]
    if not columns:
        return [], None
    in_year_columns = [i for i, (r, c) in enumerate(positions) if c in columns and r >= heads]
    row = positions[max(in_year_columns, key=lambda i: scores[i])][0] if in_year_columns else None
    values = {c: parse_number(table[row][c]) if row is not None and c < len(table[row]) else None for c in columns}
    values = {c: v for c, v in values.items() if v is not None}
    comparison = _COMPARATIVE.search(question)
    bound = _BOUND.search(question)
    if (comparison or bound) and not values:  # nothing to compare
        return [], None
    if comparison and not several:
        pick = max if comparison.group(1).lower() in _MORE else min
        return [years[pick(values, key=lambda c: values[c])][1]], row
    if bound:
        limit = float(bound.group(2).replace(",", ""))
        above = bound.group(1).lower() in _ABOVE
        return [years[c][1] for c, v in values.items() if (v > limit if above else v < limit)], row
    unique = {}
    for c in columns:
        unique.setdefault(years[c][0], years[c][1])
    return list(unique.values()), None


def _several(
    table: Sequence[Sequence[str]],
    positions: list[tuple[int, int]],
    features: np.ndarray,
    scores: np.ndarray,
    best: int,
) -> list[tuple[int, int]]:
    """Several cells: in the best row, the best cell of each year the question asks, when it asks
    two or more; else the cells scoring at least :data:`MULTI_THRESHOLD` of the best (two at least)."""
    year_asked = CELL_FEATURES.index("column_year_asked")
    row = positions[best][0]
    years = column_years(table, header_rows(table))
    per_year: dict[str, int] = {}
    for i, (r, c) in enumerate(positions):
        if r == row and features[i, year_asked] > 0:
            year = years[c][0]
            if year not in per_year or scores[i] > scores[per_year[year]]:
                per_year[year] = i
    if len(per_year) >= 2:
        return [positions[i] for i in per_year.values()]
    order = np.argsort(-scores)
    chosen = [i for i in order if scores[i] >= MULTI_THRESHOLD * scores[best]]
    return [positions[i] for i in (chosen if len(chosen) >= 2 else order[:2])]


def fit_table_lookup(records: Sequence[QARecord], *, l2: float = 3.0) -> tuple[TableLookup | None, dict[str, Any]]:
    """Fit the cell scorer on the records whose answer is a cell (:func:`answer_cells`), then
    the routers on every record.

    Returns:
        ``(lookup, report)``: None (and the report says why) when fewer than
        :data:`MIN_POSITIVES` answers are cells.
    """
    cells = [answer_cells(r) for r in records]
    positives = [(r, c) for r, c in zip(records, cells, strict=True) if c]
    report: dict[str, Any] = {
        "questions": len(records),
        "cell_answers": len(positives),
        "several_cells": sum(len(c) > 1 for _, c in positives),
    }
    if len(positives) < MIN_POSITIVES:
        return None, report | {"kept": False, "why": f"fewer than {MIN_POSITIVES} training answers are table cells"}
    x, y = [], []
    for record, gold in positives:
        positions, features = cell_candidates(record.question, record.table)
        x.append(features)
        y.extend(float(p in gold) for p in positions)
    cell_scorer = fit_logistic(np.concatenate(x), np.asarray(y), l2=1.0)
    words = QuestionWords.fit(records)
    questions = np.stack([router_inputs(words, cell_scorer, r.question, r.table)[0] for r in records])
    is_lookup = np.array([bool(c) for c in cells], dtype=np.float64)
    several = np.array([len(c) > 1 for c in cells if c], dtype=np.float64)
    lookup = TableLookup(
        words,
        fit_logistic(questions, is_lookup, l2=l2, standardise=False),
        fit_logistic(questions[is_lookup > 0], several, l2=l2, standardise=False),
        cell_scorer,
    )
    return lookup, report | {"kept": True, "vocabulary": len(words)}


def training_questions(
    real: Sequence[QARecord], synthetic: Sequence[QARecord], synthetic_lookups: int, *, seed: int = 0
) -> list[QARecord]:
    """The lookup's training questions: the real ones when there are any (the synthetic program
    questions otherwise), plus ``synthetic_lookups`` synthetic cell questions
    (:func:`generate_lookups`). The synthetic program questions are left out when there are real
    ones: adding them cost right TAT-QA answers on the selection documents (measured:
    docs/log/finance.md, 'Answers read from the table')."""
    from vfm.plugins.finance.data.synthetic import generate_lookups

    return list(real or synthetic) + generate_lookups(synthetic_lookups, seed=seed)
