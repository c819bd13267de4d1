"""Reading FinQA, TAT-QA and ConvFinQA files into :class:`QARecord` lists.

- **FinQA** (official ``*.json``): a list of documents, each with ``pre_text``, ``table``,
  ``post_text`` and one ``qa`` (``question``, ``program``, ``exe_ans``, ``gold_inds``).
  The answer is ``exe_ans``, the number the official evaluation compares against.
- **TAT-QA** (``tatqa_dataset_*.json``): a list of contexts, each a ``table``, its
  ``paragraphs`` and several ``questions``. Paragraphs become ``pre_text`` in their
  ``order``. An arithmetic ``derivation`` such as ``(44.1-56.7)/56.7`` becomes a FinQA
  program (:mod:`vfm.plugins.finance.language.expression`); when the answer is a percentage
  (``scale == "percent"``, -22.22) and the derivation gives the fraction (-0.2222), a
  final ``multiply(#n, const_100)`` makes the program give the answer itself. Evidence is
  ``rel_paragraphs``, plus, when the answer comes from the table, the rows holding a
  number of the derivation or an answer span.
- **ConvFinQA** (program-of-thought format): conversations with ``questions``, one
  ``programs`` line per turn (``x0 = 60.94 - 25.14; ans = x0 / 25.14``), the final
  ``answer``, ``text`` and the ``table`` as ``a | b | c`` lines. A record is the final
  turn, earlier turns in ``history``; its program is compiled from the final turn's line.
  Evidence is matched from ``golden_table`` rows and ``golden_text`` sentences.
- **FinQA prompts** (JSON Lines, PIXIU's ``valid.jsonl``: ``{"id", "conversations": [human,
  assistant]}``): the human turn holds ``Context: <pre text>``, the table as ``|a|b|c|``
  lines, the post text, then ``Question: ...``; the assistant turn is the answer
  (``exe_ans``). No program and no gold evidence: :mod:`vfm.plugins.finance.generation.program_search`
  finds programs that give the answer (:func:`load_finqa_prompts`).

:func:`load_any` tells the three JSON formats apart by their fields, and reads ``.jsonl`` as prompts.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from vfm.platform.errors import VfmError
from vfm.platform.fileio import read_jsonl_objects
from vfm.plugins.finance.data.records import QARecord
from vfm.plugins.finance.data.table_text import parse_table
from vfm.plugins.finance.evaluation.metrics import tatqa_em_f1
from vfm.plugins.finance.language.executor import execute
from vfm.plugins.finance.language.expression import compile_expression
from vfm.plugins.finance.language.numbers import float_or_none
from vfm.plugins.finance.language.program import Step, render_program

_YES_NO = ("yes", "no")
_SENTENCE_END = re.compile(r"(?<=\s\.)\s+")
"""FinQA-style text ends sentences with a space-separated full stop: ``... 2019 . The ...``."""

_FORMAT_FIELDS: dict[str, frozenset[str]] = {
    "finqa": frozenset({"pre_text", "table", "post_text", "qa"}),
    "tatqa": frozenset({"table", "paragraphs", "questions"}),
    "convfinqa": frozenset({"questions", "programs", "answer", "table", "text"}),
}
"""The fields that identify each format, on the first item of the file's list."""


def load_any(path: str | Path) -> list[QARecord]:
    """Load a FinQA, TAT-QA or ConvFinQA file, recognised by its fields, or a FinQA prompt
    file (``.jsonl``, :func:`load_finqa_prompts`).

    Raises:
        VfmError: the file is missing, not JSON, or in none of the formats.
    """
    if str(path).lower().endswith(".jsonl"):
        return load_finqa_prompts(path)
    data = _read_json_list(path)
    return _LOADERS[detect_format(data, path)](data, str(path))


def detect_format(data: Sequence[Any], path: str | Path = "data") -> str:
    """``"finqa"``, ``"tatqa"`` or ``"convfinqa"``, from the fields of the first item.

    Raises:
        VfmError: the data is empty or its fields match no format.
    """
    first = data[0] if data else None
    if not isinstance(first, Mapping):
        raise VfmError(
            "the file holds no records",
            where=str(path),
            fix="pass a FinQA, TAT-QA or ConvFinQA JSON file (a list of records)",
        )
    for name, fields in _FORMAT_FIELDS.items():
        if fields <= first.keys():
            return name
    raise VfmError(
        f"unknown format: the first record has fields {', '.join(sorted(first))}",
        where=str(path),
        fix="pass a FinQA (pre_text, table, post_text, qa), TAT-QA (table, "
        "paragraphs, questions) or ConvFinQA (questions, programs, answer) file",
    )


def load_finqa(path: str | Path) -> list[QARecord]:
    """Load an official FinQA file."""
    return _finqa(_read_json_list(path), str(path))


def load_tatqa(path: str | Path) -> list[QARecord]:
    """Load a TAT-QA file: one record per question."""
    return _tatqa(_read_json_list(path), str(path))


def load_convfinqa(path: str | Path) -> list[QARecord]:
    """Load a ConvFinQA file in program-of-thought format (see the module doc): one record per
    conversation, its final turn."""
    return _convfinqa(_read_json_list(path), str(path))


def load_finqa_prompts(path: str | Path) -> list[QARecord]:
    """Load FinQA questions in PIXIU's prompt format (JSON Lines; see the module doc).

    Raises:
        VfmError: the file is missing, a line is not JSON, or a prompt lacks its context,
            table or question.
    """
    records = []
    for number, item in read_jsonl_objects(path, fix="pass PIXIU's FinQA prompt file unchanged"):
        where = f"{path}:{number}"
        turns = _field(item, "conversations", where)
        if isinstance(turns, str):
            try:
                turns = ast.literal_eval(turns)
            except (ValueError, SyntaxError):
                turns = None
        if not isinstance(turns, list) or len(turns) < 2 or not all(isinstance(t, Mapping) for t in turns[:2]):
            raise VfmError(
                "conversations is not a [question, answer] pair",
                where=where,
                fix="pass PIXIU's FinQA prompt file unchanged",
            )
        match = _PROMPT.search(str(_field(turns[0], "value", where)))
        if match is None:
            raise VfmError(
                "the prompt has no 'Context:' with a table and a 'Question:'",
                where=where,
                fix="pass PIXIU's FinQA prompt file unchanged",
            )
        answer = str(_field(turns[1], "value", where)).strip()
        number = float_or_none(answer)
        if answer not in _YES_NO and number is None:
            raise VfmError(
                f"answer {answer!r} is neither a number nor yes/no",
                where=where,
                fix="pass PIXIU's FinQA prompt file unchanged",
            )
        table = [[cell.strip() for cell in row.strip()[1:-1].split("|")] for row in match["table"].splitlines()]
        records.append(
            QARecord(
                id=str(item.get("id", number)),
                pre_text=_sentences(match["pre"]),
                table=table,
                post_text=_sentences(match["post"]),
                question=match["question"].strip(),
                answer=answer if answer in _YES_NO else number,
                answer_type="comparison" if answer in _YES_NO else "arithmetic",
                source="finqa",
            )
        )
    return records


_PROMPT = re.compile(
    r"Context:(?P<pre>.*?)\n(?P<table>(?:\|[^\n]*\|\n)+)(?P<post>.*?)"
    r"\nQuestion:(?P<question>.*?)\nAnswer:",
    re.DOTALL,
)
"""The parts of a PIXIU FinQA prompt."""


def _read_json_list(path: str | Path) -> list[Any]:
    """The JSON list in ``path``, with one-line errors for the usual mistakes."""
    path = Path(path)
    if not path.is_file():
        raise VfmError("file not found", where=str(path), fix="check the path (or set VFM_DATA_DIR)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise VfmError(
            f"not valid JSON: {err.msg} at line {err.lineno}, column {err.colno}",
            where=str(path),
            fix="pass the dataset's .json file unchanged (JSON Lines files are not read here)",
        ) from None
    except UnicodeDecodeError:
        raise VfmError("not a UTF-8 text file", where=str(path), fix="pass the dataset's .json file") from None
    if not isinstance(data, list):
        raise VfmError(
            f"expected a JSON list of records, found a {type(data).__name__}",
            where=str(path),
            fix="pass the dataset's .json file unchanged",
        )
    return data


def _field(item: Mapping[str, Any], name: str, where: str) -> Any:
    """``item[name]``, or a VfmError naming the record and the missing field."""
    if not isinstance(item, Mapping) or name not in item:
        raise VfmError(f"missing field {name!r}", where=where, fix="check the file is in the format its loader expects")
    return item[name]


def _finqa(data: Sequence[Any], path: str) -> list[QARecord]:
    records = []
    for index, item in enumerate(data):
        where = f"{path} record {index}"
        qa = _field(item, "qa", where)
        answer = _field(qa, "exe_ans", where)
        records.append(
            QARecord(
                id=str(_field(item, "id", where)),
                pre_text=list(_field(item, "pre_text", where)),
                table=[list(map(str, row)) for row in _field(item, "table", where)],
                post_text=list(_field(item, "post_text", where)),
                question=_field(qa, "question", where),
                answer=answer if answer in _YES_NO else float(answer),
                program=_field(qa, "program", where),
                gold_evidence=list(qa.get("gold_inds", {})),
                answer_type="comparison" if answer in _YES_NO else "arithmetic",
                source="finqa",
            )
        )
    return records


def _tatqa(data: Sequence[Any], path: str) -> list[QARecord]:
    records = []
    for index, context in enumerate(data):
        where = f"{path} context {index}"
        table = [list(map(str, row)) for row in _field(_field(context, "table", where), "table", where)]
        paragraphs = sorted(_field(context, "paragraphs", where), key=lambda p: int(p.get("order", 0)))
        position = {str(p.get("order")): i for i, p in enumerate(paragraphs)}
        for question in _field(context, "questions", where):
            records.append(_tatqa_record(question, table, paragraphs, position, f"{where} question"))
    return records


def _tatqa_record(
    question: Mapping[str, Any],
    table: list[list[str]],
    paragraphs: Sequence[Mapping[str, Any]],
    position: Mapping[str, int],
    where: str,
) -> QARecord:
    answer, answer_type = _field(question, "answer", where), _field(question, "answer_type", where)
    scale, derivation = question.get("scale", ""), question.get("derivation", "")
    spans = [str(span) for span in answer] if isinstance(answer, list) else []
    value: str | float = float(answer) if answer_type == "arithmetic" else "; ".join(spans) or str(answer)
    program = _tatqa_program(derivation, value, scale) if answer_type == "arithmetic" else None
    evidence = [f"text_{position[order]}" for order in question.get("rel_paragraphs", []) if order in position]
    if question.get("answer_from") in ("table", "table-text"):
        wanted = _number_tokens(derivation) if answer_type == "arithmetic" else spans
        evidence = _matching_rows(table, wanted) + evidence
    return QARecord(
        id=str(_field(question, "uid", where)),
        pre_text=[str(p.get("text", "")) for p in paragraphs],
        table=table,
        post_text=[],
        question=_field(question, "question", where),
        answer=value,
        program=program,
        gold_evidence=evidence,
        scale=scale,
        answer_type=answer_type,
        source="tatqa",
        answer_spans=spans,
    )


def _tatqa_program(derivation: str, answer: float, scale: str) -> str | None:
    """The FinQA program of an arithmetic derivation, scaled to a percentage answer when
    that is what makes it give the answer; None when it is not arithmetic."""
    try:
        steps, _ = compile_expression(derivation)
    except VfmError:
        return None
    if not steps:
        return None
    if scale == "percent" and not _gives(steps, answer, scale):
        scaled = [*steps, Step("multiply", (f"#{len(steps) - 1}", "const_100"))]
        steps = scaled if _gives(scaled, answer, scale) else steps
    return render_program(steps)


def _gives(steps: Sequence[Step], answer: float, scale: str) -> bool:
    """Whether a program's value matches the answer under the TAT-QA metric."""
    try:
        value = execute(steps, [])
    except VfmError:
        return False
    return tatqa_em_f1(str(value), scale, answer, scale, "arithmetic")[0] == 1.0


def _number_tokens(derivation: str) -> list[str]:
    """The numbers written in a derivation, as they would appear in a cell."""
    return re.findall(r"\d[\d,]*(?:\.\d+)?", derivation)


def _matching_rows(table: Sequence[Sequence[str]], wanted: Sequence[str]) -> list[str]:
    """Ids of the rows with a cell equal to one of ``wanted`` (ignoring ``$``, ``%``, spaces
    and parentheses)."""

    def bare(text: str) -> str:
        return re.sub(r"[\s$%()]", "", text).lower()

    targets = {bare(text) for text in wanted} - {""}
    return [f"table_{i}" for i, row in enumerate(table) if targets & {bare(cell) for cell in row}]


def _convfinqa(data: Sequence[Any], path: str) -> list[QARecord]:
    records = []
    for index, item in enumerate(data):
        where = f"{path} record {index}"
        questions, programs = _field(item, "questions", where), _field(item, "programs", where)
        if not questions or len(programs) != len(questions):
            raise VfmError(
                f"{len(questions)} questions but {len(programs)} programs",
                where=where,
                fix="give one program line per question",
            )
        table = parse_table(_field(item, "table", where))
        sentences = _sentences(_field(item, "text", where))
        ident = str(item.get("id", index))
        evidence = _convfinqa_evidence(item, table, sentences)
        answer = _field(item, "answer", where)
        program = _pot_program(programs[-1], where)
        records.append(
            QARecord(
                id=ident,
                pre_text=sentences,
                table=table,
                post_text=[],
                question=questions[-1],
                answer=answer if answer in _YES_NO else float(answer),
                program=program,
                gold_evidence=evidence,
                answer_type="comparison" if answer in _YES_NO else "arithmetic" if program else "span",
                source="convfinqa",
                history=list(questions[:-1]),
            )
        )
    return records


def _pot_program(line: str, where: str) -> str | None:
    """Compile ``x0 = a - b; ans = x0 / b`` into FinQA steps; None when nothing is computed."""
    steps: list[Step] = []
    names: dict[str, str] = {}
    for statement in filter(str.strip, line.split(";")):
        name, equals, expression = statement.partition("=")
        if not equals:
            raise VfmError(
                f"expected 'name = expression', found {statement.strip()!r}",
                where=where,
                fix="write each statement as 'x0 = a - b'",
            )
        new_steps, names[name.strip()] = compile_expression(expression, names, first_step=len(steps))
        steps += new_steps
    return render_program(steps) if steps else None


def _sentences(text: str) -> list[str]:
    """FinQA-style text split into sentences at `` . ``."""
    return [sentence.strip() for sentence in _SENTENCE_END.split(text) if sentence.strip()]


def _convfinqa_evidence(item: Mapping[str, Any], table: list[list[str]], sentences: list[str]) -> list[str]:
    """Ids of the table rows in ``golden_table`` (after its header) and of the sentences
    of ``golden_text`` found in the text."""
    golden_rows = [line.strip() for line in str(item.get("golden_table", "")).splitlines()[1:] if line.strip()]
    rows = {" | ".join(row): i for i, row in enumerate(table)}
    found = [
        f"table_{rows[' | '.join(c.strip() for c in line.split('|'))]}"
        for line in golden_rows
        if " | ".join(c.strip() for c in line.split("|")) in rows
    ]
    positions = {sentence: i for i, sentence in reversed(list(enumerate(sentences)))}
    found += [f"text_{positions[s]}" for s in _sentences(str(item.get("golden_text", ""))) if s in positions]
    return list(dict.fromkeys(found))


_LOADERS: dict[str, Callable[[Sequence[Any], str], list[QARecord]]] = {
    "finqa": _finqa,
    "tatqa": _tatqa,
    "convfinqa": _convfinqa,
}
