"""The benchmarks' own scores: FinQA execution and program accuracy, TAT-QA exact match
and F1, and retrieval recall@k.

FinQA (``code/evaluate/evaluate.py``):

- *execution accuracy*: the predicted program runs and its answer, rounded to 5 decimals,
  equals the gold ``exe_ans`` exactly; a program that fails to run is wrong.
- *program accuracy*: the predicted program uses only the gold program's arguments (and
  table steps) and computes the same expression of them. The official script turns both
  into sympy expressions over symbols (one per distinct argument text, so ``const_100`` is
  a symbol, not 100) and compares them after ``simplify``. Sympy is not in the serving
  runtime, so here the two expressions are evaluated exactly (fractions) at a few random
  points of those symbols and compared: ``add``/``multiply`` in either order, regrouped
  sums and products, and any algebraically equal form agree, as they do under sympy.

TAT-QA (``tatqa_metric.py``, ``tatqa_utils.py``): answers become strings (several spans
sorted and joined; numbers rounded to 2 decimals and multiplied by their scale, printed
with 4 decimals), are normalised (lower case, no punctuation or articles, numbers
canonical), then exact match and bag-of-words F1 are taken; a bare number predicted with
no scale also counts as a fraction (0.2222 matches 22.22 percent); arithmetic and count
answers score F1 = exact match. Kept quirk: an empty or zero prediction (``0``, ``0.0``)
scores 0, as the official ``if not prediction`` does; pass ``"0"`` to predict zero.
"""

from __future__ import annotations

import cmath
import operator
import random
import re
import string
from collections.abc import Collection, Sequence
from fractions import Fraction

from vfm.platform.errors import VfmError
from vfm.plugins.finance.data.records import QARecord
from vfm.plugins.finance.language.executor import Value, execute
from vfm.plugins.finance.language.numbers import scale_factor, tatqa_is_number, tatqa_to_number
from vfm.plugins.finance.language.program import TABLE_OPS, Program, Step, parse_program, step_reference

_EQUIVALENCE_POINTS = 4
"""Random points at which two symbolic programs must agree to count as equal. Symbols
take values in [0.5, 2], so powers stay finite."""

_MAX_POINTS = 20
"""Points tried before giving up when the expressions are undefined at most of them."""

_MAX_EXACT_EXPONENT = 64
"""Integer exponents up to this size are computed exactly; others in floating point."""

_Expression = tuple
"""``("sym", name)`` or ``(op, left, right)``."""

_EXACT_OPS = {"add": operator.add, "subtract": operator.sub, "multiply": operator.mul, "divide": operator.truediv}

_PUNCTUATION = frozenset(string.punctuation)


def finqa_execution_match(predicted: Program, table: Sequence[Sequence[str]], gold_answer: Value) -> bool:
    """Whether the predicted program runs on ``table`` to exactly ``gold_answer`` (FinQA ``exe_ans``)."""
    try:
        return execute(predicted, table) == gold_answer
    except VfmError:
        return False


def finqa_program_match(predicted: Program, gold: Program) -> bool:
    """Whether two programs are the same computation over the gold program's arguments.

    Args:
        predicted: the model's program; malformed programs are not equal to anything.
        gold: the gold program.
    """
    gold_steps = parse_program(gold)
    try:
        predicted_steps = parse_program(predicted)
    except VfmError:
        return False
    symbols = _symbols(gold_steps)
    if not _uses_only(predicted_steps, symbols):
        return False
    gold_tree = _tree(gold_steps, len(gold_steps) - 1, symbols)
    predicted_tree = _tree(predicted_steps, len(predicted_steps) - 1, symbols)
    if gold_tree is None or predicted_tree is None:
        return False
    return _equivalent(gold_tree, predicted_tree, sorted(set(symbols.values())))


def finqa_scores(predicted: Sequence[Program], records: Sequence[QARecord]) -> dict[str, float]:
    """Execution and program accuracy of predicted programs, one per record, as fractions.

    Returns:
        ``{"execution_accuracy", "program_accuracy", "count"}``; records without a gold
        program count as program-inaccurate, as they cannot be matched.
    """
    _check_lengths(predicted, records)
    executed = sum(finqa_execution_match(p, r.table, r.answer) for p, r in zip(predicted, records, strict=True))
    programs = sum(
        r.program is not None and finqa_program_match(p, r.program) for p, r in zip(predicted, records, strict=True)
    )
    count = len(records)
    return {
        "execution_accuracy": executed / max(count, 1),
        "program_accuracy": programs / max(count, 1),
        "count": float(count),
    }


def tatqa_em_f1(
    prediction: str | float | Sequence[str | float],
    pred_scale: str,
    gold: str | float | Sequence[str],
    gold_scale: str,
    answer_type: str,
) -> tuple[float, float]:
    """TAT-QA exact match and F1 of one prediction.

    Args:
        prediction: a number, a span, or several spans.
        pred_scale: the predicted scale (``""``, ``thousand``, ``million``, ``billion``, ``percent``).
        gold: the gold answer: a number, or the list of gold spans.
        gold_scale: the gold scale.
        answer_type: TAT-QA's ``span``, ``multi-span``, ``arithmetic`` or ``count``.

    Returns:
        ``(exact_match, f1)``, each in [0, 1]; F1 is rounded to 2 decimals.
    """
    if not prediction:
        return 0.0, 0.0
    gold_answers = _gold_answers(gold, answer_type)
    predictions = list(prediction) if isinstance(prediction, (list, tuple)) else [prediction]
    gold_strings = _answer_strings(gold_answers, gold_scale)
    predicted_strings = _answer_strings(predictions, pred_scale) + _as_fraction(predictions, pred_scale)
    exact, f1 = max(_em_f1(p, g) for p in predicted_strings for g in gold_strings)
    return exact, exact if answer_type in ("arithmetic", "count") else f1


def tatqa_scores(
    predicted: Sequence[tuple[str | float | Sequence[str | float], str]], records: Sequence[QARecord]
) -> dict[str, float]:
    """Mean TAT-QA exact match and F1 of ``(answer, scale)`` predictions, one per record.

    Returns:
        ``{"exact_match", "f1", "count"}``.
    """
    _check_lengths(predicted, records)
    scores = [
        tatqa_em_f1(answer, scale, r.answer_spans or r.answer, r.scale, r.answer_type)
        for (answer, scale), r in zip(predicted, records, strict=True)
    ]
    count = len(records)
    return {
        "exact_match": sum(s[0] for s in scores) / max(count, 1),
        "f1": sum(s[1] for s in scores) / max(count, 1),
        "count": float(count),
    }


def recall_at_k(ranked: Sequence[str], gold: Collection[str], k: int) -> float:
    """The fraction of gold evidence ids among the first ``k`` ranked ids.

    Raises:
        VfmError: ``k`` is below 1 or there is no gold evidence to recall.
    """
    if k < 1:
        raise VfmError(f"k must be at least 1, got {k}", where="recall@k", fix="pass k >= 1")
    if not gold:
        raise VfmError(
            "recall is undefined without gold evidence",
            where="recall@k",
            fix="score only records that have gold evidence (mean_recall_at_k skips the others)",
        )
    return len(set(ranked[:k]) & set(gold)) / len(set(gold))


def mean_recall_at_k(ranked: Sequence[Sequence[str]], gold: Sequence[Collection[str]], k: int) -> float:
    """Mean :func:`recall_at_k` over records that have gold evidence (0.0 when none has)."""
    scored = [recall_at_k(r, g, k) for r, g in zip(ranked, gold, strict=True) if g]
    return sum(scored) / len(scored) if scored else 0.0


def _check_lengths(predicted: Sequence[object], records: Sequence[QARecord]) -> None:
    """One prediction per record."""
    if len(predicted) != len(records):
        raise VfmError(
            f"{len(predicted)} predictions for {len(records)} records",
            where="metrics",
            fix="give exactly one prediction per record, in the same order",
        )


def _symbols(steps: Sequence[Step]) -> dict[tuple[str, ...], str]:
    """FinQA's symbol map: one symbol per distinct literal argument and per table step."""
    symbols: dict[tuple[str, ...], str] = {}
    for step in steps:
        keys = (
            [(step.op, *step.args)]
            if step.op in TABLE_OPS
            else [(arg,) for arg in step.args if step_reference(arg) is None]
        )
        for key in keys:
            symbols.setdefault(key, f"a{len(symbols)}")
    return symbols


def _uses_only(steps: Sequence[Step], symbols: dict[tuple[str, ...], str]) -> bool:
    """Every table step and literal is one of the gold's, and references point backwards."""
    for index, step in enumerate(steps):
        if step.op in TABLE_OPS:
            if (step.op, *step.args) not in symbols:
                return False
            continue
        for arg in step.args:
            reference = step_reference(arg)
            if (reference is None and (arg,) not in symbols) or (reference is not None and reference >= index):
                return False
    return True


def _tree(steps: Sequence[Step], index: int, symbols: dict[tuple[str, ...], str]) -> _Expression | None:
    """The expression step ``index`` computes; None when a ``greater`` feeds another step."""
    step = steps[index]
    if step.op in TABLE_OPS:
        return ("sym", symbols[(step.op, *step.args)])
    parts: list[_Expression] = []
    for arg in step.args:
        reference = step_reference(arg)
        if reference is None:
            parts.append(("sym", symbols[(arg,)]))
            continue
        if steps[reference].op == "greater":
            return None
        part = _tree(steps, reference, symbols)
        if part is None:
            return None
        parts.append(part)
    return (step.op, parts[0], parts[1])


def _equivalent(a: _Expression, b: _Expression, names: list[str]) -> bool:
    """Whether two expressions agree at several random points of their symbols.

    Two comparisons agree when their differences (left - right) do, as a simplified
    relation does. Points where both sides are undefined (division by zero) are skipped.
    """
    if (a[0] == "greater") != (b[0] == "greater"):
        return False
    if a[0] == "greater":
        a, b = ("subtract", a[1], a[2]), ("subtract", b[1], b[2])
    rng = random.Random(0)
    agreed = 0
    for _ in range(_MAX_POINTS):
        point = {name: Fraction(rng.randint(500, 2000), 1000) for name in names}
        left, right = _evaluate(a, point), _evaluate(b, point)
        if left is None and right is None:
            continue
        if not _same(left, right):
            return False
        agreed += 1
        if agreed == _EQUIVALENCE_POINTS:
            return True
    return False


def _evaluate(tree: _Expression, point: dict[str, Fraction]) -> Fraction | complex | None:
    """The value at ``point``: exact where possible; None where undefined or overflowing."""
    if tree[0] == "sym":
        return point[tree[1]]
    left, right = _evaluate(tree[1], point), _evaluate(tree[2], point)
    if left is None or right is None:
        return None
    try:
        if tree[0] == "exp":
            return _power(left, right)
        return _EXACT_OPS[tree[0]](left, right)
    except (ZeroDivisionError, OverflowError):
        return None


def _power(base: Fraction | complex, exponent: Fraction | complex) -> Fraction | complex:
    """``base ** exponent``, exact for small integer exponents of exact bases."""
    exact = isinstance(base, Fraction) and isinstance(exponent, Fraction)
    if exact and exponent.denominator == 1 and abs(exponent) <= _MAX_EXACT_EXPONENT:
        return base**exponent
    return complex(base) ** complex(exponent)


def _same(a: Fraction | complex | None, b: Fraction | complex | None) -> bool:
    """Exact equality for exact values, 1e-9 relative closeness otherwise."""
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, Fraction) and isinstance(b, Fraction):
        return a == b
    return cmath.isclose(complex(a), complex(b), rel_tol=1e-9, abs_tol=1e-12)


def _gold_answers(gold: str | float | Sequence[str], answer_type: str) -> list[str]:
    """TAT-QA's ``extract_gold_answers``: spans as given, a count as an integer string."""
    if isinstance(gold, (list, tuple)):
        return [str(span) for span in gold]
    if answer_type == "count":
        return [str(int(float(gold)))]
    return [str(gold)]


def _answer_strings(answers: Sequence[str | float], scale: str) -> list[str]:
    """TAT-QA's ``get_answer_str``: answers sorted, numbers scaled, joined into one string."""
    ordered = sorted(answers) if len({type(a) for a in answers}) == 1 else sorted(answers, key=str)
    parts = []
    for answer in ordered:
        text = str(answer)
        number = tatqa_to_number(text) if tatqa_is_number(text) else None
        if number is None:
            parts.append(f"{text} {scale}" if scale else text)
        elif "%" in text:
            parts.append(f"{number:.4f}")
        else:
            parts.append(f"{round(number, 2) * scale_factor(scale):.4f}")
    return [" ".join(parts)]


def _as_fraction(predictions: Sequence[str | float], scale: str) -> list[str]:
    """TAT-QA's ``add_percent_pred``: a lone unscaled number may also be a fraction."""
    if len(predictions) != 1 or scale:
        return []
    text = str(predictions[0])
    number = tatqa_to_number(text) if "%" not in text and tatqa_is_number(text) else None
    return [] if number is None else [f"{number:.4f}"]


def _em_f1(predicted: str, gold: str) -> tuple[float, float]:
    """Exact match and bag-of-words F1 of two normalised answer strings."""
    predicted, gold = _normalise(predicted), _normalise(gold)
    exact = float(predicted == gold)
    predicted_bag, gold_bag = set(predicted.split()), set(gold.split())
    common = len(predicted_bag & gold_bag)
    precision = common / len(predicted_bag) if predicted_bag else 1.0
    recall = common / len(gold_bag) if gold_bag else 1.0
    f1 = 0.0 if precision == 0.0 and recall == 0.0 else 2 * precision * recall / (precision + recall)
    return exact, round(f1, 2)


def _normalise(text: str) -> str:
    """TAT-QA's ``normalize_answer``, token by token: lower case, punctuation removed from
    words that are not numbers, numbers canonical, articles removed."""
    parts = []
    for token in re.split(" ", text):
        token = token.lower()
        if not tatqa_is_number(token):
            token = "".join(ch for ch in token if ch not in _PUNCTUATION)
        if tatqa_is_number(token):
            token = str(tatqa_to_number(token))
        token = " ".join(re.sub(r"\b(a|an|the)\b", " ", token).split())
        if token.strip():
            parts.append(token)
    return " ".join(parts).strip()
