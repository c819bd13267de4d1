"""Number reading: FinQA's official rules, TAT-QA's official rules, and pasted numbers."""

from __future__ import annotations

import pytest

from vfm.plugins.finance.language.numbers import (
    finqa_cell_to_num,
    finqa_str_to_num,
    parse_number,
    scale_factor,
    tatqa_is_number,
    tatqa_to_number,
)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("5829", 5829.0),
        ("5,829", 5829.0),
        ("-3.5", -3.5),
        ("5.2%", 0.052),  # FinQA divides percentages by 100: multiply(25%, 5283.3) = 1320.825
        ("const_100", 100.0),
        ("const_1000000", 1e6),
        ("const_m1", -1.0),
        ("const_5", 5.0),
        ("none", None),
        ("$5", None),
        ("revenue", None),
        ("inf", None),
        ("nan", None),
        ("const_x", None),
    ],
)
def test_finqa_str_to_num(text, value):
    assert finqa_str_to_num(text) == pytest.approx(value) if value is not None else finqa_str_to_num(text) is None


@pytest.mark.parametrize(
    ("cell", "value"),
    [
        ("$ 2457", 2457.0),
        ("$ -1234 ( 1234 )", -1234.0),
        ("27% ( 27 % )", 0.27),
        ("1,234", 1234.0),
        ("(1,234)", -1234.0),
        ("$ (12.5)", -12.5),
        ("( 9.9 ) % (  % )", -0.099),
        ("", None),
        ("n/a", None),
        ("% (  % )", None),
        ("copyright 2019", None),
    ],
)
def test_finqa_cell_to_num(cell, value):
    got = finqa_cell_to_num(cell)
    assert got is None if value is None else got == pytest.approx(value)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("$1,234", 1234.0),
        ("(1,234)", -1234.0),
        ("$ (12.5)", -12.5),
        ("-$5", -5.0),
        ("-5.2%", -0.052),
        ("12 %", 0.12),
        ("1.5 billion", 1.5e9),
        ("€ 3.2m", 3.2e6),
        ("250 thousand", 250e3),
        ("2019", 2019.0),
        ("USD 5", 5.0),
        ("−7", -7.0),
        ("n/a", None),
        ("-", None),
        ("—", None),
        ("", None),
        ("$", None),
        ("1,23", None),
        ("abc", None),
        ("5 apples", None),
        ("12% million", None),
    ],
)
def test_parse_number(text, value):
    got = parse_number(text)
    assert got is None if value is None else got == pytest.approx(value)


@pytest.mark.parametrize(
    ("scale", "factor"),
    [
        ("", 1),
        ("thousand", 1000),
        ("million", 1_000_000),
        ("billion", 1_000_000_000),
        ("percent", 0.01),
        ("In Millions", 1_000_000),
        ("hundred", 100),
    ],
)
def test_scale_factor(scale, factor):
    assert scale_factor(scale) == factor


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("-22.22", -22.22),
        ("$1,496.5", 1496.5),
        ("12%", 0.12),
        ("5 million", 5_000_000),
        ("(123)", -123),
        ("2019", 2019),
        ("(1,234)", 1234),  # official quirk: the comma defeats the negative pattern
        (".5", None),
        ("abc", None),
    ],
)
def test_tatqa_to_number_follows_the_official_script(text, value):
    assert tatqa_to_number(text) == value


def test_tatqa_integers_stay_integers():
    assert str(tatqa_to_number("2019")) == "2019"
    assert str(tatqa_to_number("2019.0")) == "2019.0"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1,234", True),
        ("$5", True),
        ("5 million", True),
        ("(12)", True),
        ("1 apple", False),
        ("abc", False),
        ("", False),
        ("nan", False),
    ],
)
def test_tatqa_is_number(text, expected):
    assert tatqa_is_number(text) is expected
