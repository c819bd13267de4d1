"""Choosing among the generator's beams with cues its decoder does not weigh.

The generator often decodes the right program but not first: on the selection records of the
reported recipe a correct program is among its 20 beams far more often than it is the first beam
that runs (measured: docs/log/finance.md, 'Re-ranking the beams'). Most misses have the right
operations and the wrong arguments: last year's value for this year's, the two numbers of a change
in the wrong order.
:class:`BeamReranker` scores each beam that runs by :data:`FEATURES` with a logistic regression
(:mod:`vfm.plugins.finance.retrieval.logistic`) fitted on the selection records after training, and the
predictor answers with the best-scoring one.

Features of one beam, from the question, the document and the retriever's unit scores:

- the generator's log-probability and the beam's rank; the number of steps;
- of its number arguments: the share whose year (the column of a table row, or the nearest
  year before it in a sentence, :func:`vfm.plugins.finance.generation.features.year_before`) the question
  names; the mean and lowest retriever score of the units that hold them; the share written in
  the question;
- for a program that starts with a subtraction of two numbers of known years: +1 when the later
  year comes first (a change), -1 when the earlier does; for ``subtract`` then ``divide``: +1 when
  the change is divided by the number subtracted (a relative change), else -1;
- for a question about a share (:data:`vfm.plugins.finance.retrieval.retriever.SHARE_WORDS`): whether the
  answer lies in (0, 1] and whether it is negative;
- the answer's vote among the beams that run: the log of the share of their probability that
  gives the same answer (to 5 decimals), and how many of them do. Different programs that agree
  (``add(a, b)`` and ``add(b, a)``, one number copied from the table or from a sentence) pool
  their evidence, as in self-consistency decoding.

Torch-free: it runs in the exported bundle.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vfm.platform.errors import VfmError
from vfm.plugins.finance.generation.features import (
    is_number_word,
    is_year_word,
    number_argument,
    split_words,
    year_before,
)
from vfm.plugins.finance.language.executor import Value, execute
from vfm.plugins.finance.language.program import parse_program, step_reference
from vfm.plugins.finance.retrieval.logistic import LogisticModel, fit_logistic, load_logistic, save_logistic
from vfm.plugins.finance.retrieval.retriever import SHARE_WORDS

FEATURES = (
    "bias",
    "log_probability",
    "beam_rank",
    "steps",
    "argument_year_in_question",
    "change_later_minus_earlier",
    "change_divided_by_subtrahend",
    "argument_relevance_mean",
    "argument_relevance_min",
    "share_in_unit_interval",
    "share_negative",
    "argument_in_question",
    "answer_vote_log_share",
    "answer_vote_count",
)
"""The scorer's inputs, in order; ``bias`` is constant 1."""

BEAMS = 20
"""Beams decoded for the re-ranker to choose from."""

FILE = "reranker.json"
_FORMAT = "vfm-finance-beam-reranker/1"


@dataclass(frozen=True)
class Beam:
    """A decoded program that runs.

    Attributes:
        program: the program string.
        probability: its probability under the generator.
        rank: its place among the decoded programs (0: most probable), those that fail included.
        answer: what it executes to.
    """

    program: str
    probability: float
    rank: int
    answer: Value


def running_beams(decoded: Sequence[tuple[str, float]], table: Sequence[Sequence[str]]) -> Iterator[Beam]:
    """The decoded ``(program, probability)`` pairs, most probable first, that run on ``table``
    (lazily: a caller that wants the first one executes no more)."""
    for rank, (program, probability) in enumerate(decoded):
        try:
            yield Beam(program, probability, rank, execute(program, table))
        except VfmError:
            continue


def number_facts(units: Mapping[str, str], unit_scores: Mapping[str, float]) -> dict[str, tuple[frozenset[str], float]]:
    """For each number argument of a document (as a program writes it): the years named before it
    and the best retriever score of a unit holding it.

    Args:
        units: evidence id -> text (:meth:`QARecord.evidence`).
        unit_scores: evidence id -> retriever probability.
    """
    found: dict[str, tuple[set[str], float]] = {}
    for ident, text in units.items():
        words = split_words(text)
        for index, word in enumerate(words):
            if not is_number_word(word):
                continue
            argument = number_argument(words, index)
            years, score = found.get(argument, (set(), 0.0))
            if year := year_before(words, index):
                years.add(year)
            found[argument] = (years, max(score, unit_scores.get(ident, 0.0)))
    return {argument: (frozenset(years), score) for argument, (years, score) in found.items()}


def beam_features(
    question: str, beams: Sequence[Beam], facts: Mapping[str, tuple[frozenset[str], float]]
) -> np.ndarray:
    """The ``[len(beams), len(FEATURES)]`` features of the beams of one question (all those that run:
    the vote features compare them)."""
    words = set(split_words(question))
    votes = answer_votes(beams)
    question_years = {w for w in words if is_year_word(w)}
    share = bool(words & SHARE_WORDS)
    rows = []
    for beam in beams:
        steps = parse_program(beam.program)
        numbers = [
            a
            for step in steps
            for a in step.args
            if step_reference(a) is None and not a.startswith("const_") and a != "none"
        ]
        years = [facts.get(a, (frozenset(), 0.0))[0] for a in numbers]
        relevance = [facts.get(a, (frozenset(), 0.0))[1] for a in numbers] or [0.0]
        year_hit = float(np.mean([bool(y & question_years) for y in years])) if numbers and question_years else 0.0
        order = 0.0
        if steps[0].op == "subtract" and len(numbers) >= 2 and years[0] and years[1]:
            order = 1.0 if max(years[0]) > max(years[1]) else -1.0
        relative = 0.0
        if len(steps) >= 2 and steps[0].op == "subtract" and steps[1].op == "divide":
            relative = 1.0 if steps[1].args[1] == steps[0].args[1] else -1.0
        answer = beam.answer if isinstance(beam.answer, float) else None
        rows.append(
            [
                1.0,
                math.log(max(beam.probability, 1e-12)),
                math.log1p(beam.rank),
                float(len(steps)),
                year_hit,
                order,
                relative,
                float(np.mean(relevance)),
                float(np.min(relevance)),
                float(share and answer is not None and 0 < abs(answer) <= 1),
                float(share and answer is not None and answer < 0),
                float(np.mean([a in words for a in numbers])) if numbers else 0.0,
                *votes[beam.answer],
            ]
        )
    return np.asarray(rows, dtype=np.float64).reshape(len(beams), len(FEATURES))


def answer_votes(beams: Sequence[Beam]) -> dict[Value, tuple[float, float]]:
    """For each answer the beams give (as executed: rounded to 5 decimals, FinQA's match): ``(log of the
    share of the beams' probability giving it, how many beams give it)``."""
    mass: dict[Value, float] = {}
    count: dict[Value, int] = {}
    for beam in beams:
        mass[beam.answer] = mass.get(beam.answer, 0.0) + beam.probability
        count[beam.answer] = count.get(beam.answer, 0) + 1
    total = sum(mass.values()) or 1.0
    return {key: (math.log(max(mass[key] / total, 1e-12)), float(count[key])) for key in mass}


class BeamReranker:
    """A logistic regression over :data:`FEATURES` that picks one beam per question.

    Args:
        model: the fitted scorer; None before :meth:`fit`.
        beams: how many beams the predictor decodes for it.
    """

    def __init__(self, model: LogisticModel | None = None, beams: int = BEAMS):
        self.model = model
        self.beams = beams

    def fit(self, questions: Sequence[tuple[np.ndarray, np.ndarray]], *, l2: float = 1.0) -> BeamReranker:
        """Fit on ``(features [B, F], correct [B])`` of each question's beams.

        Raises:
            VfmError: no question has both a correct and a wrong beam.
        """
        useful = [(x, y) for x, y in questions if len(y) and 0 < y.sum() < len(y)]
        if not useful:
            raise VfmError(
                "no question has both a correct and a wrong beam to learn from",
                where="BeamReranker.fit",
                fix="fit on more selection questions, or keep the generator's own order",
            )
        self.model = fit_logistic(
            np.concatenate([x for x, _ in useful]), np.concatenate([y for _, y in useful]).astype(np.float64), l2=l2
        )
        return self

    def choose(self, features: np.ndarray) -> int:
        """The index of the best beam among ``features`` ``[B, F]`` (B >= 1)."""
        if self.model is None:
            raise VfmError("the re-ranker is not fitted", where="BeamReranker", fix="call fit() or BeamReranker.load()")
        return int(np.argmax(self.model.logits(features)))

    def save(self, path: str | Path) -> Path:
        """Write the scorer as JSON."""
        if self.model is None:
            raise VfmError("the re-ranker is not fitted", where=str(path), fix="call fit() before save")
        return save_logistic(path, self.model, fmt=_FORMAT, features=FEATURES, beams=self.beams)

    @classmethod
    def load(cls, path: str | Path) -> BeamReranker:
        """Read a scorer written by :meth:`save`.

        Raises:
            VfmError: the file is unreadable, not a re-ranker, or made for other features.
        """
        model, data = load_logistic(
            path,
            fmt=_FORMAT,
            features=FEATURES,
            what="beam re-ranker",
            written_by="pass the reranker.json a training run wrote, or delete it to keep the beam order",
            refit="refit it: re-run 'vfm finetune finance --out RUN' (a finished run resumes at its end and refits it)",
        )
        return cls(model, int(data["beams"]))
