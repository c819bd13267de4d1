"""The questions and documents users get wrong, for the reliability suite
(:class:`~vfm.platform.bad_input.BadInput`): JSON files for ``vfm predict`` and pasted text for the
demo's four boxes (text before, table, text after, question)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from vfm.platform.bad_input import BadInput, write_bytes

_TABLE = [["", "2020", "2019"], ["revenue", "120", "100"], ["net income", "12", "10"]]
_TABLE_TEXT = "item,2020,2019\nrevenue,120,100\nnet income,12,10"
_QUESTION = "what was the change in revenue from 2019 to 2020?"


def _json(folder: Path, name: str, value: Any) -> Path:
    return write_bytes(folder, f"{name}.json", json.dumps(value).encode())


def _question(**fields: Any) -> dict[str, Any]:
    return {"question": _QUESTION, "table": _TABLE, "pre_text": ["Revenue rose."], **fields}


def finance_bad_inputs(folder: Path) -> list[BadInput]:
    """Wrong questions under ``folder``; each reaches ``vfm predict`` (a JSON file) and, where the
    four boxes can hold it, the app."""
    files: list[tuple[str, Any, str]] = [
        ("no-question-field", {"table": _TABLE}, "has no question"),
        ("question-null", _question(question=None), "question is empty"),
        ("question-a-number", _question(question=42), "question must be text"),
        ("question-a-list", _question(question=["what", "was"]), "question must be text"),
        ("table-missing", {"question": _QUESTION}, "table is empty"),
        ("table-a-number", _question(table=7), "rows of cells"),
        ("table-of-strings", _question(table=["a", "b"]), "rows of cells"),
        ("table-list-cell", _question(table=[["", "2020"], ["revenue", [1, 2]]]), "is a list"),
        ("table-dict-cell", _question(table=[["", "2020"], ["revenue", {"v": 1}]]), "is a dict"),
        ("table-bool-cell", _question(table=[["", "2020"], ["revenue", True]]), "is a bool"),
        ("table-ragged", _question(table=[["", "2020", "2019"], ["revenue", "1"]]), "cells but the header has"),
        ("table-no-numbers", _question(table=[["", "a"], ["revenue", "high"]]), "no numeric cells"),
        ("table-header-only", _question(table=[["", "2020", "2019"]]), "no data rows"),
        ("pre-text-a-dict", _question(pre_text={"a": 1}), "must be text or a list"),
        ("pre-text-holds-a-dict", _question(pre_text=["ok", {"a": 1}]), "holds a dict"),
        ("post-text-a-number", _question(post_text=12), "must be text or a list"),
        ("history-a-string", _question(history="what was revenue?"), "history must be a list"),
        ("history-holds-a-dict", _question(history=[{"q": 1}]), "history must be a list"),
        ("question-too-long", _question(question="what " * 400 + "?"), "characters (at most"),
        ("text-too-long", _question(pre_text=["Revenue rose by a lot. " * 5000]), "characters (at most"),
        ("json-list-of-numbers", [1, 2, 3], "a list of 3 items (a number), not a question"),
        ("json-empty-list", [], "holds no records"),
        ("json-a-string", "what was revenue?", "holds text, not a question"),
        ("json-null", None, "holds null, not a question"),
    ]
    inputs = [BadInput(name, expect, file=_json(folder, name, value)) for name, value, expect in files]
    raw = [
        ("empty-file", b"", "not a JSON file"),
        ("not-json", b"question: what was revenue?\n", "not a JSON file"),
        ("not-utf8", '{"question": "caf\u00e9"}'.encode("latin-1"), "not a JSON file"),
        ("truncated-json", json.dumps(_question()).encode()[:40], "not a JSON file"),
    ]
    inputs += [BadInput(name, expect, file=write_bytes(folder, f"{name}.json", data)) for name, data, expect in raw]
    inputs += [
        BadInput("missing-file", "not found", file=folder / "no-such-question.json"),
        BadInput("a-folder", "got a folder", file=folder),
    ]
    pasted = [  # (pre, table, post, question)
        ("app-empty-question", ["Revenue rose.", _TABLE_TEXT, "", ""], "question is empty"),
        ("app-blank-question", ["Revenue rose.", _TABLE_TEXT, "", "   \n "], "question is empty"),
        ("app-empty-table", ["Revenue rose.", "", "", _QUESTION], "table is empty"),
        ("app-table-without-numbers", ["", "item,a\nrevenue,high", "", _QUESTION], "no numeric cells"),
        ("app-table-ragged", ["", "item,2020,2019\nrevenue,1", "", _QUESTION], "cells but the header has"),
        ("app-table-header-only", ["", "item,2020,2019", "", _QUESTION], "no data rows"),
        ("app-table-huge", ["", _TABLE_TEXT + "\nx,1,2" * 40_000, "", _QUESTION], "the limit is"),
        ("app-question-too-long", ["", _TABLE_TEXT, "", "why " * 400], "characters (at most"),
        ("app-text-too-long", ["Revenue rose. " * 8000, _TABLE_TEXT, "", _QUESTION], "characters (at most"),
        ("app-nothing", ["", "", "", ""], "question is empty"),
    ]
    inputs += [BadInput(name, expect, app=args) for name, args, expect in pasted]
    return inputs
