"""Ranking a document's evidence units (table rows in words, text sentences) for a question.

Each unit gets a few cheap features, and a logistic regression (numpy, trained on gold
evidence) turns them into one score:

- BM25 of the question against the units of the same document (``bm25s``), raw, relative
  to the document's best unit, and as a reciprocal rank;
- word and bigram overlap with the question;
- for table rows: how much of the row name the question holds, and whether it holds all of it;
- the question's numbers and years found in the unit;
- what the unit is (a row, the header row, a sentence) and whether it holds numbers;
- cues of how reports are laid out: a question about a share ("what portion of the total ...")
  needs the *total* row, a sentence that introduces a table (no number, ending in a colon:
  "... as follows:") holds no answer, and a month named in the question picks its row of a
  monthly table.

With a sentence encoder (``dense``), the regression also weighs the unit's cosine with the question
(:mod:`vfm.plugins.finance.retrieval.dense`).

Recall@k is FinQA's retriever metric: the share of a question's gold units among its k best,
averaged over questions (:func:`vfm.plugins.finance.evaluation.metrics.mean_recall_at_k`). Torch-free
(a training run's dense encoder is torch; a bundle's is ONNX).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import bm25s
import numpy as np

from vfm.platform.errors import VfmError
from vfm.plugins.finance.data.records import QARecord
from vfm.plugins.finance.evaluation.metrics import mean_recall_at_k
from vfm.plugins.finance.generation.features import (
    content_words,
    is_number_word,
    is_year_word,
    record_question,
    split_words,
)
from vfm.plugins.finance.retrieval.dense import DENSE_FEATURES, dense_features, load_dense_encoder
from vfm.plugins.finance.retrieval.logistic import (
    LogisticModel,
    fit_logistic,
    load_logistic,
    read_scorer_json,
    save_logistic,
)

FEATURES = (
    "bias",
    "bm25",
    "bm25_relative",
    "bm25_reciprocal_rank",
    "kind_reciprocal_rank",
    "word_overlap",
    "bigram_overlap",
    "row_name_bm25",
    "row_name_bm25_relative",
    "row_name_overlap",
    "row_name_in_question",
    "question_number_in_unit",
    "question_year_in_unit",
    "is_row",
    "is_header",
    "is_text",
    "unit_has_numbers",
    "unit_number_count",
    "text_has_numbers",
    "text_has_question_year",
    "text_word_overlap",
    "row_word_overlap",
    "closeness_before_table",
    "closeness_after_table",
    "row_is_total",
    "total_row_for_share_question",
    "total_row_for_total_question",
    "row_for_share_question",
    "table_introduction",
    "question_month_in_unit",
)
"""The scorer's inputs, in order; ``bias`` is constant 1."""

_FORMAT = "vfm-finance-retriever/1"

SHARE_WORDS = frozenset(
    {"portion", "percentage", "percent", "share", "proportion", "comprised", "ratio", "fraction", "%"}
)
"""Question words that ask for a part of a whole (whose denominator is usually a *total* row)."""

MONTHS = frozenset(
    {
        "january",
        "february",
        "march",
        "april",
        "may",
        "june",
        "july",
        "august",
        "september",
        "october",
        "november",
        "december",
    }
)
"""Month names: a question naming one is about that row of a monthly table (share buybacks)."""


def unit_features(
    question: str, units: Mapping[str, str], row_names: Mapping[str, str], table_at: int | None = None
) -> np.ndarray:
    """The ``[N, len(FEATURES)]`` features of one document's units for a question.

    Args:
        question: the question.
        units: evidence id -> text, in document order (:meth:`QARecord.evidence`).
        row_names: the row name of each table-row unit, by evidence id.
        table_at: the number of sentences before the table (``len(pre_text)``); the
            sentences just before a table often introduce it. None when unknown.
    """
    ids = list(units)
    query = content_words(question)
    query_set = set(query)
    query_bigrams = set(zip(query, query[1:], strict=False))
    query_numbers = {w.replace(",", "") for w in split_words(question) if is_number_word(w) and not is_year_word(w)}
    query_years = {w for w in split_words(question) if is_year_word(w)}
    question_words = set(split_words(question))
    asks_share, asks_total = float(bool(question_words & SHARE_WORDS)), float("total" in question_words)
    query_months = question_words & MONTHS
    unit_words = [content_words(units[ident]) for ident in ids]
    bm25 = _bm25(query, unit_words)
    is_row = np.array([ident in row_names for ident in ids])
    reciprocal, kind_reciprocal = _reciprocal_rank(bm25), np.zeros(len(ids))
    for kind in (is_row, ~is_row):
        kind_reciprocal[kind] = _reciprocal_rank(bm25[kind])
    names = [content_words(row_names.get(ident, "")) for ident in ids]
    name_bm25 = np.zeros(len(ids))
    name_bm25[is_row] = _bm25(query, [name for name, row in zip(names, is_row, strict=True) if row])
    features = np.zeros((len(ids), len(FEATURES)))
    for i, ident in enumerate(ids):
        words, name, row = unit_words[i], names[i], bool(is_row[i])
        raw = [w.replace(",", "") for w in split_words(units[ident])]
        numbers = [w for w in raw if is_number_word(w) and not is_year_word(w)]
        overlap = len(query_set & set(words)) / max(len(query_set), 1)
        bigrams = set(zip(words, words[1:], strict=False))
        years = len(query_years & set(raw)) / max(len(query_years), 1) if query_years else 0.0
        total = float(row and "total" in split_words(row_names[ident]))
        introduction = float(not row and not numbers and units[ident].rstrip(" .").endswith(":"))
        features[i] = (
            1.0,
            bm25[i],
            bm25[i] / max(bm25.max(), 1e-9),
            reciprocal[i],
            kind_reciprocal[i],
            overlap,
            len(query_bigrams & bigrams) / max(len(query_bigrams), 1),
            name_bm25[i],
            name_bm25[i] / max(name_bm25.max(), 1e-9),
            len(set(name) & query_set) / max(len(set(name)), 1) if name else 0.0,
            float(bool(name) and set(name) <= query_set),
            float(bool(query_numbers & set(raw))),
            years,
            float(row),
            float(ident == "table_0"),
            float(not row),
            float(bool(numbers)),
            np.log1p(len(numbers)),
            float(bool(numbers) and not row),
            years * (not row),
            overlap * (not row),
            overlap * row,
            *_closeness(ident, table_at),
            total,
            total * asks_share,
            total * asks_total,
            asks_share * row,
            introduction,
            float(bool(query_months & set(raw))),
        )
    return features


def _bm25(query: list[str], documents: list[list[str]]) -> np.ndarray:
    """BM25 scores of ``documents`` for ``query``, IDF taken over these documents."""
    if not query or not any(documents):
        return np.zeros(len(documents))
    index = bm25s.BM25()
    index.index(documents, show_progress=False)
    return np.asarray(index.get_scores(query), dtype=np.float64)


def _closeness(ident: str, table_at: int | None) -> tuple[float, float]:
    """``1 / distance`` of a sentence to the table, as (before, after); 0 for rows."""
    if table_at is None or not ident.startswith("text_"):
        return 0.0, 0.0
    index = int(ident.split("_")[1])
    return (1.0 / (table_at - index), 0.0) if index < table_at else (0.0, 1.0 / (index - table_at + 1))


def _reciprocal_rank(scores: np.ndarray) -> np.ndarray:
    """``1 / (1 + rank)`` of each score, the best ranked 0 (ties in order)."""
    reciprocal = np.zeros(len(scores))
    reciprocal[np.argsort(-scores, kind="stable")] = 1.0 / (1.0 + np.arange(len(scores)))
    return reciprocal


def record_row_names(record: QARecord) -> dict[str, str]:
    """The row name (first cell) of each table-row unit, by evidence id (``table_<i>``)."""
    return {f"table_{i}": row[0] for i, row in enumerate(record.table) if row}


class EvidenceRetriever:
    """A logistic-regression ranker over :data:`FEATURES` (and :data:`DENSE_FEATURES` with ``dense``).

    Args:
        model: the fitted scorer; None before :meth:`fit`.
        dense: a sentence encoder (``embed(texts) -> [N, D]`` unit vectors), or None (lexical only).
        dense_max_length: the encoder's tokens per text, saved with the scorer.
    """

    def __init__(self, model: LogisticModel | None = None, dense=None, dense_max_length: int | None = None):
        self.model, self.dense, self.dense_max_length = model, dense, dense_max_length

    @property
    def features(self) -> tuple[str, ...]:
        """The scorer's inputs, in order."""
        return FEATURES + DENSE_FEATURES if self.dense is not None else FEATURES

    def features_for(
        self, question: str, units: Mapping[str, str], row_names: Mapping[str, str], table_at: int | None = None
    ) -> np.ndarray:
        """``[N, len(self.features)]``: :func:`unit_features`, then the dense ones."""
        features = unit_features(question, units, row_names, table_at)
        if self.dense is None:
            return features
        return np.concatenate([features, dense_features(self.dense, question, units)], axis=1)

    def fit(self, records: Sequence[QARecord], *, l2: float = 1.0, iterations: int = 25) -> EvidenceRetriever:
        """Fit on the gold evidence of ``records`` (Newton's method, L2 penalty ``l2``).

        Each record weighs the same: its gold units share weight 1 and its other units share
        weight 1, so long documents do not dominate; each source (FinQA, TAT-QA, ...) weighs
        the same in total, so the largest does not decide alone what evidence looks like.

        Raises:
            VfmError: no record has gold evidence.
        """
        blocks, labels, weights = [], [], []
        sources = Counter(record.source for record in records)
        for record in records:
            evidence = record.evidence()
            gold = set(record.gold_evidence) & set(evidence)
            if not gold or len(gold) == len(evidence):
                continue
            blocks.append(
                self.features_for(record_question(record), evidence, record_row_names(record), len(record.pre_text))
            )
            label = np.array([ident in gold for ident in evidence], dtype=np.float64)
            labels.append(label)
            share = len(records) / (len(sources) * sources[record.source])
            weights.append(share * np.where(label > 0, 1.0 / label.sum(), 1.0 / (len(label) - label.sum())))
        if not blocks:
            raise VfmError(
                "no training record has gold evidence",
                where="EvidenceRetriever.fit",
                fix="train on records whose gold_evidence is set (FinQA, TAT-QA, ConvFinQA, synthetic)",
            )
        self.model = fit_logistic(
            np.concatenate(blocks), np.concatenate(labels), np.concatenate(weights), l2=l2, iterations=iterations
        )
        return self

    def score_units(
        self, question: str, units: Mapping[str, str], row_names: Mapping[str, str], table_at: int | None = None
    ) -> list[tuple[str, float]]:
        """``(evidence id, probability)`` for every unit, best first (ties in document order);
        the arguments are those of :func:`unit_features`.

        Raises:
            VfmError: the retriever is not fitted.
        """
        if self.model is None:
            raise VfmError(
                "the retriever is not fitted",
                where="EvidenceRetriever",
                fix="call fit(records) or EvidenceRetriever.load(path)",
            )
        if not units:
            return []
        scores = self.model.probabilities(self.features_for(question, units, row_names, table_at))
        order = np.argsort(-scores, kind="stable")
        ids = list(units)
        return [(ids[i], float(scores[i])) for i in order]

    def rank(self, record: QARecord) -> list[str]:
        """A record's evidence ids, best first."""
        return [
            ident
            for ident, _ in self.score_units(
                record_question(record), record.evidence(), record_row_names(record), len(record.pre_text)
            )
        ]

    def save(self, path: str | Path) -> Path:
        """Write the scorer as JSON (the dense encoder is saved by its trainer, beside it)."""
        if self.model is None:
            raise VfmError("the retriever is not fitted", where=str(path), fix="call fit(records) before save")
        dense = {"dense_max_length": self.dense_max_length} if self.dense is not None else {}
        return save_logistic(path, self.model, fmt=_FORMAT, features=self.features, **dense)

    @classmethod
    def load(cls, path: str | Path) -> EvidenceRetriever:
        """Read a scorer written by :meth:`save`, with its dense encoder when it has one (a bundle's
        ONNX export or a run's torch folder beside the file: :func:`load_dense_encoder`).

        Raises:
            VfmError: the file is missing, not a retriever, or made for other features; its dense
                encoder is missing.
        """
        options = {
            "what": "retriever",
            "written_by": "pass the retriever.json a training run wrote",
            "refit": "retrain the retriever with this version of vfm",
        }
        written = read_scorer_json(path, _FORMAT, expected={}, **options)
        dense = written.get("features") == [*FEATURES, *DENSE_FEATURES]
        model, data = load_logistic(
            path, fmt=_FORMAT, features=FEATURES + DENSE_FEATURES if dense else FEATURES, **options
        )
        if not dense:
            return cls(model)
        length = int(data["dense_max_length"])
        return cls(model, load_dense_encoder(Path(path).parent, length), length)


def retrieval_recall(
    rank: Callable[[QARecord], list[str]], records: Sequence[QARecord], ks: Sequence[int] = (1, 3, 5)
) -> dict[str, float]:
    """FinQA's retriever recall@k for each k of a ranking (e.g. :meth:`EvidenceRetriever.rank`: a record's
    evidence ids, best first), over the records that have gold evidence.

    Returns:
        ``{"recall@1": ..., "recall@3": ..., "count": records scored}``.
    """
    scored = [r for r in records if r.gold_evidence]
    ranked = [rank(r) for r in scored]
    result = {f"recall@{k}": mean_recall_at_k(ranked, [r.gold_evidence for r in scored], k) for k in ks}
    result["count"] = float(len(scored))
    return result
