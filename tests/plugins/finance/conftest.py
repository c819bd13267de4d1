"""Finance plugin test helpers: the real-data marker and its data folder, and records written as FinQA.

Real-data tests read the public datasets from ``$VFM_DATA_DIR`` (default: ``../shared/data``
beside the repository) and are skipped when the folder is missing; nothing else here reads
outside the repository.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

REPO = Path(__file__).resolve().parents[3]
F = TypeVar("F", bound=Callable[..., Any])

DATA_DIR = Path(os.environ.get("VFM_DATA_DIR", REPO.parent / "shared" / "data"))


def needs_data(*relative: str) -> Callable[[F], F]:
    """Mark a test ``realdata`` and skip it unless these files are in the data folder."""
    missing = [name for name in relative if not (DATA_DIR / name).is_file()]

    def decorate(test: F) -> F:
        skip = pytest.mark.skipif(bool(missing), reason=f"real data not found in {DATA_DIR}: {missing}")
        return pytest.mark.realdata(skip(test))

    return decorate


def finqa_item(record: Any) -> dict[str, Any]:
    """A ``QARecord`` in the official FinQA JSON format (gold evidence with its text)."""
    evidence = record.evidence()
    return {
        "id": record.id,
        "pre_text": record.pre_text,
        "table": record.table,
        "post_text": record.post_text,
        "qa": {
            "question": record.question,
            "program": record.program,
            "exe_ans": record.answer,
            "gold_inds": {ident: evidence[ident] for ident in record.gold_evidence},
        },
    }
