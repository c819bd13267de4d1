"""Programs for questions that come with an answer but no program: weak labels.

FinQA's whole dev split exists as prompt/answer pairs (:func:`loaders.load_finqa_prompts`),
without programs or gold evidence. A program that computes the answer from the document's
own numbers is found by search, as weakly supervised semantic parsers do:

1. every number of the document but years (table cells, sentences; FinQA's argument form,
   see :func:`features.number_argument`) is a candidate argument, with a *relevance*: the
   retriever's probability of the most relevant unit holding it, doubled when the year of
   its column (or the nearest year before it in its sentence) is one the question names;
2. every program of :data:`TEMPLATES` (FinQA's common shapes) is computed over all choices
   of arguments at once (numpy broadcasting), and the choices whose result equals the
   answer as FinQA's execution accuracy compares it (rounded to 5 decimals) are kept;
3. the kept program with the highest score, ``log(prior of its shape) + sum of
   log(relevance of its arguments)``, is the label, and the units holding its arguments are
   its gold evidence. Questions no template answers get no label.

Spurious programs (the right answer from the wrong numbers) exist; :func:`label_quality`
measures how often the label is the gold program on records that have one
(``benchmarks/finance_weak_labels.py`` on the real data).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from vfm.platform.errors import VfmError
from vfm.plugins.finance.data.records import QARecord
from vfm.plugins.finance.evaluation.metrics import finqa_program_match
from vfm.plugins.finance.generation.features import (
    is_number_word,
    is_year_word,
    number_argument,
    record_question,
    split_words,
    year_before,
)
from vfm.plugins.finance.language.executor import execute
from vfm.plugins.finance.language.numbers import finqa_str_to_num
from vfm.plugins.finance.retrieval.retriever import EvidenceRetriever, record_row_names

TEMPLATES: tuple[tuple[str, float], ...] = (
    ("subtract(a, b)", 200),
    ("subtract(a, b), divide(#0, b)", 120),
    ("subtract(a, b), divide(#0, b), multiply(#1, const_100)", 120),
    ("divide(a, b)", 60),
    ("add(a, b), divide(#0, const_2)", 50),
    ("add(a, b)", 45),
    ("divide(a, b), multiply(#0, const_100)", 25),
    ("add(a, b), add(#0, c)", 20),
    ("add(a, b), add(#0, c), divide(#1, const_3)", 15),
    ("multiply(a, b)", 10),
    ("divide(a, b), subtract(#0, const_1)", 8),
    ("divide(a, b), subtract(#0, const_1), multiply(#1, const_100)", 8),
    ("multiply(a, b), divide(#0, c)", 8),
    ("add(a, b), divide(#0, c)", 8),
    ("subtract(a, b), divide(#0, c)", 4),
    ("subtract(a, b), multiply(#0, const_100)", 4),
    ("divide(a, b), multiply(#0, c)", 4),
    ("divide(a, b), multiply(a, #0)", 4),
    ("divide(a, b), divide(const_1, const_2), exp(#0, #1), subtract(#2, const_1)", 2),
    ("divide(a, b), divide(const_1, const_3), exp(#0, #1), subtract(#2, const_1)", 2),
    ("table_average(r, none)", 4),
    ("table_sum(r, none)", 2),
    ("table_max(r, none)", 1),
    ("table_min(r, none)", 1),
)
"""Program shapes and their prior weights, roughly their counts among the training gold
programs (FinQA train, ConvFinQA, TAT-QA; TAT-QA's ``(a + b) / 2`` counted as
``const_2``). Slots ``a``, ``b``, ``c`` are distinct document numbers; ``r`` is a row."""

MAX_THREE_SLOT_NUMBERS = 30
"""Templates with three number slots draw them from only this many most relevant numbers
(the search grows as the cube)."""

YEAR_BONUS = 2.0
"""Relevance factor of a number whose year (column or sentence) the question names."""


@dataclass(frozen=True)
class Candidate:
    """A document number that may be a program argument.

    Attributes:
        argument: as a program writes it (``1452``, ``5.2%``, ``-9819``).
        value: its value.
        units: evidence ids holding it.
        relevance: in (0, 1], see the module doc.
    """

    argument: str
    value: float
    units: tuple[str, ...]
    relevance: float


@dataclass(frozen=True)
class Label:
    """A found program. ``score`` ranks labels (higher is likelier); ``matches`` counts the
    argument choices of any template that gave the answer."""

    program: str
    evidence: tuple[str, ...]
    score: float
    matches: int


def candidates(record: QARecord, unit_scores: dict[str, float]) -> list[Candidate]:
    """The document's numbers, most relevant first.

    Args:
        record: the question and its document.
        unit_scores: evidence id -> retriever probability.
    """
    question_years = {w for w in split_words(record_question(record)) if is_year_word(w)}
    found: dict[str, tuple[float, set[str], float]] = {}
    for ident, text in record.evidence().items():
        words = split_words(text)
        for index, word in enumerate(words):
            if ident == "table_0" or not is_number_word(word) or is_year_word(word):
                continue
            argument = number_argument(words, index)
            value = finqa_str_to_num(argument)
            if value is None:
                continue
            year = year_before(words, index)
            relevance = unit_scores.get(ident, 0.0) * (YEAR_BONUS if year in question_years else 1.0)
            old = found.get(argument, (value, set(), 0.0))
            found[argument] = (value, old[1] | {ident}, max(old[2], relevance))
    ranked = [
        Candidate(arg, value, tuple(sorted(units)), max(relevance, 1e-6) / YEAR_BONUS)
        for arg, (value, units, relevance) in found.items()
    ]
    return sorted(ranked, key=lambda c: -c.relevance)


def find_program(record: QARecord, retriever: EvidenceRetriever) -> Label | None:
    """The likeliest program of :data:`TEMPLATES` that gives ``record.answer``, or None.

    Only numeric answers are searched (a yes/no answer fits too many comparisons).
    """
    if not isinstance(record.answer, float) or not record.table:
        return None
    question = record_question(record)
    unit_scores = dict(
        retriever.score_units(question, record.evidence(), record_row_names(record), len(record.pre_text))
    )
    pool = candidates(record, unit_scores)
    best: Label | None = None
    matches = 0
    total = sum(weight for _, weight in TEMPLATES)
    for template, weight in TEMPLATES:
        prior = math.log(weight / total)
        for program, args_evidence, log_relevance in _solutions(template, pool, record, unit_scores):
            matches += 1
            score = prior + log_relevance
            if best is None or score > best.score:
                best = Label(program, args_evidence, score, 0)
    return None if best is None else replace(best, matches=matches)


def _solutions(template: str, pool: Sequence[Candidate], record: QARecord, unit_scores: dict[str, float]):
    """``(program, evidence, sum of log relevance)`` for each argument choice of
    ``template`` whose result equals the answer."""
    if template.startswith("table_"):
        for i, row in enumerate(record.table[1:], start=1):
            if not row or not row[0]:
                continue
            program = template.replace("(r,", f"({row[0]},")
            if _gives(program, record):
                ident = f"table_{i}"
                yield program, (ident,), math.log(max(unit_scores.get(ident, 0.0), 1e-6))
        return
    slots = sorted(set(_SLOT.findall(template)))
    chosen = pool[:MAX_THREE_SLOT_NUMBERS] if len(slots) == 3 else pool
    if len(chosen) < len(slots):
        return
    values = np.array([c.value for c in chosen])
    logs = np.log(np.array([c.relevance for c in chosen]))
    axes = {
        slot: values.reshape([-1 if i == axis else 1 for i in range(len(slots))]) for axis, slot in enumerate(slots)
    }
    with np.errstate(all="ignore"):
        result = _evaluate(template, axes)
    for hit in np.argwhere(np.abs(result - record.answer) <= 1e-5 * max(1.0, abs(record.answer))):
        if len(set(hit.tolist())) < len(slots):
            continue
        program = template
        for slot, index in zip(slots, hit, strict=True):
            program = _fill(program, slot, chosen[index].argument)
        if not _gives(program, record):  # the executor's own rounding decides
            continue
        evidence = tuple(
            dict.fromkeys(max(chosen[index].units, key=lambda unit: unit_scores.get(unit, 0.0)) for index in hit)
        )
        yield program, evidence, float(sum(logs[index] for index in hit))


_SLOT = re.compile(r"(?<=[(\s])([abc])(?=[,)])")
"""A number slot of a template."""


def _gives(program: str, record: QARecord) -> bool:
    """Whether ``program`` runs on the record's table to exactly its answer."""
    try:
        return execute(program, record.table) == record.answer
    except VfmError:
        return False


def _fill(template: str, slot: str, argument: str) -> str:
    """``template`` with the slot word ``slot`` replaced by ``argument``."""
    out = []
    for piece in template.replace("(", "( ").replace(")", " )").replace(",", " ,").split():
        out.append(argument if piece == slot else piece)
    return " ".join(out).replace("( ", "(").replace(" )", ")").replace(" ,", ",")


_OPS = {"add": np.add, "subtract": np.subtract, "multiply": np.multiply, "divide": np.divide, "exp": np.power}


def _evaluate(template: str, axes: dict[str, np.ndarray]) -> np.ndarray:
    """The template's last step over broadcast slot values."""
    results: list[np.ndarray] = []
    for step in template.split("), "):
        op, inner = step.rstrip(")").split("(")
        args = []
        for arg in (a.strip() for a in inner.split(",")):
            if arg in axes:
                args.append(axes[arg])
            elif arg.startswith("#"):
                args.append(results[int(arg[1:])])
            else:
                args.append(np.float64(finqa_str_to_num(arg)))
        results.append(_OPS[op](args[0], args[1]))
    return np.asarray(results[-1], dtype=np.float64)


def label_records(records: Sequence[QARecord], retriever: EvidenceRetriever) -> list[QARecord]:
    """The records a program was found for, with it as their program and its units as
    their gold evidence."""
    labelled = []
    for record in records:
        label = find_program(record, retriever)
        if label is not None:
            labelled.append(replace(record, program=label.program, gold_evidence=list(label.evidence)))
    return labelled


def label_quality(records: Sequence[QARecord], retriever: EvidenceRetriever) -> dict[str, float]:
    """How the search does on records with a gold program (their program hidden).

    Returns:
        ``{"count", "labelled", "correct", "precision"}``: records searched, records given a
        label, labels equal to the gold program (FinQA's program match), and
        ``correct / labelled``.
    """
    labelled = correct = 0
    scored = [r for r in records if r.program and isinstance(r.answer, float)]
    for record in scored:
        label = find_program(replace(record, program=None, gold_evidence=[]), retriever)
        if label is None:
            continue
        labelled += 1
        correct += finqa_program_match(label.program, record.program)
    return {
        "count": float(len(scored)),
        "labelled": float(labelled),
        "correct": float(correct),
        "precision": correct / max(labelled, 1),
    }


__all__ = ["TEMPLATES", "Candidate", "Label", "candidates", "find_program", "label_quality", "label_records"]
