"""How a finance answer is shown: its scale, and a percentage only where the question asks for one."""

import pytest

from vfm.plugins.finance.predictor import display_answer


@pytest.mark.parametrize(
    ("answer", "question", "scale", "shown"),
    [
        (3.0, "what is the ratio of debt to equity?", "", "3"),  # a ratio is a plain number, not 300 %
        (1.1566, "what was the ratio of pension assets for 2017 to 2018?", "", "1.1566"),
        (0.052, "what was the percent change in revenue?", "", "0.052 (5.20 %)"),
        (0.05, "what was the growth rate of sales?", "", "0.05 (5.00 %)"),
        (12.5, "what percentage of revenue was cost?", "percent", "12.5 %"),
        (1452.5, "what was total revenue?", "million", "1,452.5 million"),
        ("yes", "did revenue rise?", "", "yes"),
        (None, "what was revenue?", "", "no answer"),
    ],
)
def test_answers_show_the_unit_the_question_asks_for(answer, question, scale, shown):
    assert display_answer(answer, question, scale) == shown
