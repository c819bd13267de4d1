"""Benchmark scores, on hand-made cases whose official results are worked out in comments."""

from __future__ import annotations

import pytest

from vfm.platform.errors import VfmError
from vfm.plugins.finance.data.records import QARecord
from vfm.plugins.finance.evaluation.metrics import (
    finqa_execution_match,
    finqa_program_match,
    finqa_scores,
    mean_recall_at_k,
    recall_at_k,
    tatqa_em_f1,
    tatqa_scores,
)

TABLE = [["", "2019", "2018"], ["net sales", "5829", "5735"]]


@pytest.mark.parametrize(
    ("predicted", "gold", "match"),
    [
        ("subtract(5829, 5735), divide(#0, 5735)", 0.01639, True),
        ("subtract(5829, 5735), divide(#0, 5735)", 0.0164, False),  # exact after round(x, 5): no tolerance
        ("subtract(5829, 5735), divide(#0, 5829)", 0.01639, False),
        ("greater(5829, 5735)", "yes", True),
        ("table_max(net sales, none)", 5829.0, True),
        ("divide(5829, 0)", 0.0, False),  # fails to run: wrong, not an exception
        ("table_max(revenue, none)", 5829.0, False),
        ("not a program", 1.0, False),
    ],
)
def test_execution_match(predicted, gold, match):
    assert finqa_execution_match(predicted, TABLE, gold) is match


GOLD = "subtract(5829, 5735), divide(#0, 5735)"


@pytest.mark.parametrize(
    ("predicted", "gold", "match"),
    [
        (GOLD, GOLD, True),
        (["subtract(", "5829", "5735", ")", "divide(", "#0", "5735", ")", "EOF"], GOLD, True),
        ("divide(5829, 5735), divide(5735, 5735), subtract(#0, #1)", GOLD, True),  # a/b - b/b = (a - b)/b
        ("add(1, 2), add(#0, 3)", "add(2, 3), add(1, #0)", True),  # regrouped sum
        ("multiply(3, 2), divide(#0, 4)", "multiply(2, 3), divide(#0, 4)", True),  # commutative
        ("divide(2, 4), multiply(#0, 3)", "multiply(2, 3), divide(#0, 4)", True),
        ("subtract(5735, 5829), divide(#0, 5735)", GOLD, False),  # subtract is not commutative
        ("subtract(5829, 5735), divide(5735, #0)", GOLD, False),
        ("subtract(5829, 5735), divide(#0, 5829)", GOLD, False),
        ("subtract(5829, 5735), divide(#0, const_100)", GOLD, False),  # an argument the gold does not use
        ("subtract(5829.0, 5735), divide(#0, 5735)", GOLD, False),  # arguments are compared as written
        ("divide(#1, 5735), subtract(5829, 5735)", GOLD, False),  # refers to a later step
        ("greater(5, 3)", "greater(5, 3)", True),
        ("greater(3, 5)", "greater(5, 3)", False),
        # -y > -x is x > y: the official check simplifies relations to their difference
        ("subtract(1, 2), subtract(3, 4), greater(#0, #1)", "subtract(4, 3), subtract(2, 1), greater(#0, #1)", True),
        ("subtract(1, 2), subtract(3, 4), greater(#1, #0)", "subtract(4, 3), subtract(2, 1), greater(#0, #1)", False),
        (
            "table_max(net sales, none), table_min(net sales, none), subtract(#0, #1)",
            "table_max(net sales, none), table_min(net sales, none), subtract(#0, #1)",
            True,
        ),
        ("table_max(net sales, none)", "table_min(net sales, none)", False),
        (
            "divide(6.9%, const_100), add(#0, const_1), exp(#1, 10)",
            "divide(6.9%, const_100), add(const_1, #0), exp(#1, 10)",
            True,
        ),
        (
            "divide(6.9%, const_100), add(#0, const_1), exp(10, #1)",
            "divide(6.9%, const_100), add(const_1, #0), exp(#1, 10)",
            False,
        ),
        ("add(1, 2", GOLD, False),
    ],
)
def test_program_match_follows_the_official_symbolic_check(predicted, gold, match):
    assert finqa_program_match(predicted, gold) is match


@pytest.mark.parametrize(
    ("prediction", "pred_scale", "gold", "gold_scale", "answer_type", "scores"),
    [
        (-22.22, "percent", -22.22, "percent", "arithmetic", (1.0, 1.0)),
        (-0.2222, "", -22.22, "percent", "arithmetic", (1.0, 1.0)),  # a bare fraction matches a percentage
        (-22.22, "", -22.22, "percent", "arithmetic", (0.0, 0.0)),  # missing scale
        (-22.2249, "percent", -22.22, "percent", "arithmetic", (1.0, 1.0)),  # numbers compared at 2 decimals
        (-12.6, "thousand", -12.6, "million", "arithmetic", (0.0, 0.0)),
        (12600, "thousand", 12.6, "million", "arithmetic", (1.0, 1.0)),  # same amount after scale
        ("$1,496.5", "million", ["$1,496.5"], "million", "span", (1.0, 1.0)),
        ("1496.5", "million", ["$1,496.5"], "million", "span", (1.0, 1.0)),
        ("our allowable incurred costs", "", ["our allowable incurred costs plus a profit"], "", "span", (0.0, 0.8)),
        (
            ["cost-plus type", "fixed-price type"],
            "",
            ["fixed-price type", "cost-plus type", "time-and-material type"],
            "",
            "multi-span",
            (0.0, 0.86),
        ),  # bags {costplus, type, fixedprice} vs 4 words: F1 = 6/7
        (["2018", "2019"], "", ["2019", "2018"], "", "multi-span", (1.0, 1.0)),  # spans are sorted first
        ("the Fixed Price.", "", ["Fixed Price"], "", "span", (1.0, 1.0)),  # case, punctuation, articles
        ("The 2019", "", ["2019"], "", "span", (0.0, 0.0)),  # a bare gold number reads 2019.0000, "the 2019" not
        ("4", "", "4", "", "count", (1.0, 1.0)),
        ("5", "", "4", "", "count", (0.0, 0.0)),
        ("0", "", 0, "", "arithmetic", (1.0, 1.0)),
        (0.0, "", 0, "", "arithmetic", (0.0, 0.0)),  # official quirk: a falsy prediction scores 0
        ([], "", ["x"], "", "span", (0.0, 0.0)),
    ],
)
def test_tatqa_em_f1_follows_the_official_script(prediction, pred_scale, gold, gold_scale, answer_type, scores):
    assert tatqa_em_f1(prediction, pred_scale, gold, gold_scale, answer_type) == scores


def _record(answer: object, program: str | None = None, **fields: object) -> QARecord:
    return QARecord(
        id="r",
        pre_text=[],
        table=TABLE,
        post_text=[],
        question="q",  # type: ignore[arg-type]
        answer=answer,
        program=program,
        **fields,
    )


def test_finqa_scores():
    records = [_record(0.01639, GOLD), _record(94.0, "subtract(5829, 5735)"), _record("yes", "greater(2, 1)")]
    predicted = [GOLD, "subtract(5829, 5735), multiply(#0, 1)", "greater(1, 2)"]
    scores = finqa_scores(predicted, records)
    assert scores == {
        "execution_accuracy": pytest.approx(2 / 3),
        "program_accuracy": pytest.approx(1 / 3),
        "count": 3.0,
    }


def test_tatqa_scores_use_spans_when_given():
    records = [_record("a; b", answer_spans=["a", "b"], answer_type="multi-span"), _record(-22.22, scale="percent")]
    scores = tatqa_scores([(["b", "a"], ""), (-0.2222, "")], records)
    assert scores == {"exact_match": 1.0, "f1": 1.0, "count": 2.0}


def test_scores_need_one_prediction_per_record():
    with pytest.raises(VfmError, match="1 predictions for 2 records"):
        finqa_scores(["add(1, 2)"], [_record(3.0, "add(1, 2)")] * 2)


def test_recall_at_k():
    ranked = ["text_3", "table_1", "text_0", "table_2"]
    assert recall_at_k(ranked, ["table_1", "table_2"], 1) == 0.0
    assert recall_at_k(ranked, ["table_1", "table_2"], 3) == 0.5
    assert recall_at_k(ranked, {"table_1", "table_2"}, 10) == 1.0
    assert mean_recall_at_k([ranked, ranked, ranked], [["text_3"], [], ["table_2"]], 2) == 0.5
    assert mean_recall_at_k([ranked], [[]], 2) == 0.0


@pytest.mark.parametrize(
    ("gold", "k", "message"), [(["text_1"], 0, "k must be at least 1"), ([], 3, "undefined without gold evidence")]
)
def test_recall_errors(gold, k, message):
    with pytest.raises(VfmError, match=message):
        recall_at_k(["text_1"], gold, k)
