"""The real-data splits the finance models are trained, selected and evaluated on.

The public files (``$VFM_DATA_DIR``, see ``shared/data/README.md``) hold no test splits:

- ``finqa/train_sample100.original.json``: training (100 records);
- ``finqa/dev_sample200.original.json``: evaluation only (200 records);
- ``tatqa/tatqa_dataset_dev.json``: split **by context** (table + paragraphs), so no
  document is on both sides: a context is held out for evaluation when the first 8 hex
  digits of ``sha256(table uid)``, as an integer, modulo 100 are below
  :data:`TATQA_HELD_OUT_PERCENT`; the others are for training;
- ``convfinqa/convfinqa_dev.pot_format.json``: training, without the conversations about a
  document of the FinQA evaluation records (ConvFinQA is built on FinQA's documents; how many
  conversations this drops: docs/log/finance.md, 'Data and splits');
- ``finqa/dev_all883.pixiu_prompt.jsonl`` (FinQA's whole dev split as prompt/answer pairs,
  no programs): *unlabelled* training questions, without those whose table is one of the
  evaluation records' (which drops the 200 evaluation questions themselves and the other
  questions on their pages); :mod:`program_search` finds programs for them.

Model selection uses :func:`selection_split`: a hashed share of the training documents.
Nothing here is written anywhere: the files are read where they are.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from vfm.platform.errors import VfmError
from vfm.plugins.finance.data.loaders import load_convfinqa, load_finqa, load_finqa_prompts, load_tatqa
from vfm.plugins.finance.data.records import QARecord

TATQA_HELD_OUT_PERCENT = 25
"""The share of TAT-QA contexts held out for evaluation."""

SELECTION_PERCENT = 15
"""The share of training documents kept for model selection."""

FINQA_TRAIN = "finqa/train_sample100.original.json"
FINQA_DEV = "finqa/dev_sample200.original.json"
TATQA_DEV = "tatqa/tatqa_dataset_dev.json"
CONVFINQA_DEV = "convfinqa/convfinqa_dev.pot_format.json"
FINQA_PROMPTS = "finqa/dev_all883.pixiu_prompt.jsonl"


def hash_percent(key: str) -> int:
    """A stable number in [0, 100) for ``key``: ``int(sha256(key)[:8], 16) % 100``."""
    return int(hashlib.sha256(key.encode("utf-8")).hexdigest()[:8], 16) % 100


def data_dir(path: str | Path | None = None) -> Path:
    """The data folder: ``path``, else ``$VFM_DATA_DIR``.

    Raises:
        VfmError: neither is given, or the folder does not exist.
    """
    chosen = path or os.environ.get("VFM_DATA_DIR")
    if not chosen:
        raise VfmError(
            "no data folder given",
            where="--data-dir",
            fix="pass --data-dir PATH or set VFM_DATA_DIR to the folder holding finqa/, tatqa/, convfinqa/",
        )
    folder = Path(chosen)
    if not folder.is_dir():
        raise VfmError("the data folder does not exist", where=str(folder), fix="pass the folder holding finqa/ etc.")
    return folder


@dataclass(frozen=True)
class RealData:
    """The real records, split.

    Attributes:
        train: FinQA train, TAT-QA train contexts, ConvFinQA (filtered): every answer type.
        finqa_dev: the FinQA evaluation records.
        tatqa_held_out: the held-out TAT-QA questions (every answer type).
        unlabelled: FinQA questions with an answer but no program or evidence, on documents
            of no evaluation record (empty when the prompt file is absent).
    """

    train: list[QARecord]
    finqa_dev: list[QARecord]
    tatqa_held_out: list[QARecord]
    unlabelled: list[QARecord] = field(default_factory=list)


def load_real_data(folder: str | Path | None = None) -> RealData:
    """Read and split the real data in ``folder`` (or ``$VFM_DATA_DIR``); ConvFinQA trains on each
    conversation's final turn (:func:`load_convfinqa`)."""
    folder = data_dir(folder)
    finqa_dev = load_finqa(folder / FINQA_DEV)
    tatqa_train, tatqa_held_out = split_tatqa(folder / TATQA_DEV)
    held_documents = {document_key(r) for r in finqa_dev}
    held_tables = {table_key(r) for r in finqa_dev}
    convfinqa = [
        r
        for r in load_convfinqa(folder / CONVFINQA_DEV)
        if document_key(r) not in held_documents and table_key(r) not in held_tables
    ]
    train = load_finqa(folder / FINQA_TRAIN) + tatqa_train + convfinqa
    prompts = load_finqa_prompts(folder / FINQA_PROMPTS) if (folder / FINQA_PROMPTS).is_file() else []
    unlabelled = [r for r in prompts if table_key(r) not in held_tables]
    return RealData(train, finqa_dev, tatqa_held_out, unlabelled)


def split_tatqa(path: str | Path) -> tuple[list[QARecord], list[QARecord]]:
    """``(train, held_out)`` TAT-QA questions, split by context (see the module doc)."""
    contexts = json.loads(Path(path).read_text(encoding="utf-8"))
    held = {
        question["uid"]
        for context in contexts
        if hash_percent(str(context["table"]["uid"])) < TATQA_HELD_OUT_PERCENT
        for question in context["questions"]
    }
    records = load_tatqa(path)
    return [r for r in records if r.id not in held], [r for r in records if r.id in held]


def document_key(record: QARecord) -> str:
    """The document a record is about: FinQA's ``V/2008/page_17.pdf-1`` and ConvFinQA's
    ``Single_V/2008/page_17.pdf-1`` both give ``V/2008/page_17.pdf``; other sources give
    their table."""
    ident = record.id
    for prefix in ("Single_", "Double_"):
        ident = ident.removeprefix(prefix)
    if ".pdf" in ident:
        return ident[: ident.index(".pdf") + 4]
    return table_key(record)


def table_key(record: QARecord) -> str:
    """The table's cells, lower-cased, as one string."""
    return "\n".join("|".join(" ".join(cell.lower().split()) for cell in row) for row in record.table)


def selection_split(records: Sequence[QARecord]) -> tuple[list[QARecord], list[QARecord]]:
    """``(fit, select)``: :data:`SELECTION_PERCENT` of the documents go to ``select``."""
    fit, select = [], []
    for record in records:
        (select if hash_percent(document_key(record)) < SELECTION_PERCENT else fit).append(record)
    return fit, select
