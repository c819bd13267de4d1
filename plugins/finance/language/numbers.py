"""Reading numbers the way financial documents write them, and the way the benchmarks do.

Three readers, because the benchmarks disagree and their scores depend on the details:

- :func:`finqa_str_to_num` and :func:`finqa_cell_to_num` follow the official FinQA
  evaluation (``code/evaluate/evaluate.py``: ``str_to_num`` and ``process_row``). Commas
  are dropped; **a percentage is divided by 100** (``"5.2%"`` -> 0.052, which is how gold
  answers such as ``multiply(25%, 5283.3)`` = 1320.825 are computed); ``const_X`` is X and
  ``const_m1`` is -1. A table cell loses ``$`` and anything from its first ``(`` on, since
  FinQA tables write negatives as ``-1234 ( 1234 )``.
- :func:`tatqa_to_number`, :func:`tatqa_is_number` and :func:`scale_factor` follow the
  official TAT-QA ``tatqa_utils.py``, quirks included (see each docstring).
- :func:`parse_number` reads what people paste: ``$1,234``, ``(1,234)``, ``-5.2%``,
  ``1.5 billion``; ``n/a``, ``-`` and blanks are no number.
- :func:`float_or_none` is Python's ``float`` without NaN (and infinities unless asked for):
  an answer written as a bare number.

All return ``None`` rather than raising when the text is not a number.
"""

from __future__ import annotations

import math
import re

_CONSTANT_PREFIX = "const_"
_MINUS_ONE = "m1"

_NOT_A_NUMBER = frozenset({"", "-", "--", "—", "–", "n/a", "na", "n.a.", "nm", "none", "nil", "null"})
"""Cells that stand for a missing value."""

_SCALE_WORDS = {
    "thousand": 1e3,
    "thousands": 1e3,
    "k": 1e3,
    "million": 1e6,
    "millions": 1e6,
    "m": 1e6,
    "mn": 1e6,
    "mm": 1e6,
    "billion": 1e9,
    "billions": 1e9,
    "b": 1e9,
    "bn": 1e9,
    "trillion": 1e12,
    "trillions": 1e12,
    "tn": 1e12,
}
"""Scale words after a number, for :func:`parse_number`."""

_PLAIN_NUMBER = re.compile(r"(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|\.\d+")
_CURRENCY = re.compile(r"[$€£¥]|\bus\$|\busd\b|\beur\b|\bgbp\b")
_PARENTHESISED_CELL = re.compile(r"^\(\s*([^()]*?)\s*\)\s*(%?)")

_TATQA_SCALES: tuple[tuple[str, int | float], ...] = (
    ("hundred", 100),
    ("thousand", 1000),
    ("million", 1_000_000),
    ("billion", 1_000_000_000),
    ("percent", 0.01),
)
_TATQA_EXCLUDED = "'\"\\$€£¥%(),[]"
_TATQA_NUMBER = re.compile(r"([+-]?\d+(\.\d+)?)|([+-]?\.\d+)")
_TATQA_WORD_SCALE = re.compile(r"([\d.]+\s?[a-zA-Z]+)")
_TATQA_NEGATIVE = re.compile(r"(\([\d.\s]+\))")
_TATQA_PERCENT = re.compile(r"([\d.\s]+%)")


def finqa_str_to_num(text: str) -> float | None:
    """A program argument or answer as FinQA's evaluation reads it.

    Args:
        text: ``"5,829"``, ``"5.2%"`` (-> 0.052), ``"const_100"`` (-> 100.0),
            ``"const_m1"`` (-> -1.0).

    Returns:
        The value, or None for anything else (``"none"``, ``"$5"``, a row name) and for
        infinities and NaN, which Python's ``float`` would otherwise accept.
    """
    text = text.replace(",", "")
    value = float_or_none(text)
    if value is None and "%" in text:
        value = float_or_none(text.replace("%", ""))
        value = None if value is None else value / 100.0
    elif value is None and _CONSTANT_PREFIX in text:
        constant = text.replace(_CONSTANT_PREFIX, "")
        value = float_or_none("-1" if constant == _MINUS_ONE else constant)
    return value


def finqa_cell_to_num(cell: str) -> float | None:
    """A table cell as FinQA's ``process_row`` reads it, for the ``table_*`` operations.

    ``$`` is removed and everything from the first ``(`` on is dropped, so
    ``"$ -1234 ( 1234 )"`` is -1234 and ``"27% ( 27 % )"`` is 0.27. One addition: a cell
    that *starts* with a parenthesised number, ``"(1,234)"`` or ``"( 9.9 ) %"``, is read as
    a negative, where the official script gives up on the whole row.

    Returns:
        The value, or None when the cell is not a number.
    """
    cell = cell.replace("$", "").strip()
    value = finqa_str_to_num(cell.split("(")[0].strip())
    if value is None:
        match = _PARENTHESISED_CELL.match(cell)
        inner = None if match is None else finqa_str_to_num(match.group(1) + match.group(2))
        value = None if inner is None else -inner
    return value


def parse_number(text: str) -> float | None:
    """A number as people write it in statements and tables.

    Args:
        text: e.g. ``"$1,234"``, ``"(1,234)"`` (-> -1234), ``"-5.2%"`` (-> -0.052, a
            percentage is a fraction as in FinQA), ``"1.5 billion"`` (-> 1.5e9),
            ``"€ 3.2m"``, ``"n/a"`` or ``"-"`` (-> None).

    Returns:
        The value, or None when ``text`` is not a single number.
    """
    text = " ".join(text.lower().replace("−", "-").split())
    if text in _NOT_A_NUMBER:
        return None
    text = _CURRENCY.sub("", text).replace(" ", "")
    negative = text.startswith("(") and text.endswith(")")
    body = text[1:-1] if negative else text
    if body[:1] in ("-", "+"):
        negative, body = negative != (body[0] == "-"), body[1:]
    percent = body.endswith("%")
    body = body.removesuffix("%")
    number = _PLAIN_NUMBER.match(body)
    if number is None:
        return None
    unit = body[number.end() :]
    if unit and (percent or unit not in _SCALE_WORDS):
        return None
    value = float(number.group().replace(",", "")) * (_SCALE_WORDS[unit] if unit else 1.0)
    value = value / 100.0 if percent else value
    return -value if negative else value


def scale_factor(scale: str) -> int | float:
    """TAT-QA's ``scale_to_num``: the factor of a scale word, matched as a substring.

    ``"thousand"`` -> 1000, ``"million"`` -> 10**6, ``"billion"`` -> 10**9, ``"percent"``
    -> 0.01, ``"hundred"`` -> 100, anything else (``""``) -> 1. Integers stay integers, as
    in the official script, because TAT-QA's normalised answers print them (``"2019"``,
    not ``"2019.0"``).
    """
    scale = scale.lower()
    for word, factor in _TATQA_SCALES:
        if word in scale:
            return factor
    return 1


def tatqa_is_number(text: str) -> bool:
    """TAT-QA's ``is_number``: the first word (stripped of ``$ % ( ) , [ ]`` and quotes)
    is a float, and a second word, if any, is a scale word (``"1 million"``)."""
    words = " ".join(_tatqa_clean(word) for word in text.split()).split()
    if not words or float_or_none(words[0], allow_infinite=True) is None:
        return False
    return len(words) < 2 or scale_factor(words[1]) != 1


def tatqa_to_number(text: str) -> int | float | None:
    """TAT-QA's ``to_number``: the first number in ``text``, times its scale word, negated
    when written ``(123)``, divided by 100 when written ``12%``, rounded to 4 decimals.

    Quirks kept from the official script: only the first scale word counts; ``(1,234)``
    is *not* negative (the comma defeats its pattern); a leading ``.5`` reads as no number;
    a number without a decimal point stays an integer (``"2019"`` -> 2019).
    """
    match = _TATQA_NUMBER.search(_tatqa_clean(text))
    if match is None or match.group(1) is None:
        return None
    number = float(match.group(1)) if "." in match.group(1) else int(match.group(1))
    word = _TATQA_WORD_SCALE.search(text)
    factor = scale_factor(word.group(0).lower()) if word else 1
    sign = -1 if _TATQA_NEGATIVE.search(text.strip()) else 1
    percent = 0.01 if _TATQA_PERCENT.search(text.strip()) else 1
    return round(number * factor * sign * percent, 4)


def _tatqa_clean(text: str) -> str:
    """Drop the characters TAT-QA ignores inside numbers."""
    return "".join(ch for ch in text if ch not in _TATQA_EXCLUDED)


def float_or_none(text: str, *, allow_infinite: bool = False) -> float | None:
    """Python's ``float(text)``, or None; NaN is never a number, infinities only if allowed."""
    try:
        value = float(text)
    except ValueError:
        return None
    if math.isnan(value) or (math.isinf(value) and not allow_infinite):
        return None
    return value
