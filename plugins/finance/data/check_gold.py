"""Check that every gold program in a dataset file executes to its gold answer
(``benchmarks/finance_check_gold.py FILE ...`` checks the real files).

Works on FinQA, TAT-QA and ConvFinQA files (see :func:`load_any`). FinQA and ConvFinQA
answers must match exactly, as the official FinQA evaluation compares them (5 decimals);
TAT-QA answers must match under the TAT-QA metric (2 decimals, in the answer's scale).
Records with no program (TAT-QA spans, non-arithmetic derivations) are counted, not
checked.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from vfm.platform.errors import VfmError
from vfm.plugins.finance.data.loaders import load_any
from vfm.plugins.finance.data.records import QARecord
from vfm.plugins.finance.evaluation.metrics import tatqa_em_f1
from vfm.plugins.finance.language.executor import Value, execute


@dataclass(frozen=True)
class Mismatch:
    """A gold program that does not give its gold answer.

    Attributes:
        id: the record id.
        program: the gold program.
        gold: the gold answer.
        got: what the program gave, or None when it failed.
        reason: why it does not match, in words.
    """

    id: str
    program: str
    gold: Value
    got: Value | None
    reason: str


@dataclass
class GoldReport:
    """The outcome of checking one file.

    Attributes:
        path: the file checked.
        records: how many records it holds.
        checked: how many have a gold program (and were executed).
        matched: how many programs gave their gold answer.
        mismatches: the others, with reasons.
    """

    path: str
    records: int = 0
    checked: int = 0
    matched: int = 0
    mismatches: list[Mismatch] = field(default_factory=list)

    def summary(self) -> str:
        """One line: ``path: matched/checked gold programs give the gold answer (N records)``."""
        return (
            f"{self.path}: {self.matched}/{self.checked} gold programs give the gold answer "
            f"({self.records} records, {self.records - self.checked} without a program)"
        )


def check_gold_programs(path: str | Path) -> GoldReport:
    """Execute every gold program in a dataset file and compare with its gold answer.

    Raises:
        VfmError: the file cannot be read as FinQA, TAT-QA or ConvFinQA.
    """
    records = load_any(path)
    report = GoldReport(path=str(path), records=len(records))
    for record in records:
        if record.program is None:
            continue
        report.checked += 1
        mismatch = _mismatch(record, record.program)
        if mismatch is None:
            report.matched += 1
        else:
            report.mismatches.append(mismatch)
    return report


def _mismatch(record: QARecord, program: str) -> Mismatch | None:
    """Why the record's gold ``program`` does not give its answer, or None when it does."""
    try:
        got = execute(program, record.table)
    except VfmError as err:
        return Mismatch(record.id, program, record.answer, None, f"does not execute: {err}")
    if record.source == "tatqa":
        matches = tatqa_em_f1(str(got), record.scale, record.answer, record.scale, record.answer_type)[0] == 1.0
    else:
        matches = got == record.answer
    if matches:
        return None
    return Mismatch(record.id, program, record.answer, got, f"gives {got!r}, gold is {record.answer!r}")
