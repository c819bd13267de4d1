"""Finance text for domain adaptation: FinQA / TAT-QA / ConvFinQA contexts and Financial PhraseBank
sentences as :class:`~vfm.pretrain.text_corpus.Document` s.

- :func:`read_finance` — the contexts of a FinQA / TAT-QA / ConvFinQA file (:func:`load_any`):
  ``pre_text``, the table rows as sentences, ``post_text``; one document per filing page, however
  many questions it carries;
- :func:`read_phrasebank` — Financial PhraseBank sentences, read inside its zip, labels dropped;
- :func:`finance_document_id` — the filing page of a record id, the ``id_key`` of
  :func:`vfm.pretrain.text_corpus.build_corpus` for finance corpora.
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Iterable
from pathlib import Path

from vfm.platform.errors import VfmError
from vfm.plugins.finance.data.loaders import load_any
from vfm.plugins.finance.data.records import row_to_text
from vfm.pretrain.text_corpus import Document, text_hash

_FINANCE_ID_PREFIX = re.compile(r"^(?:Single|Double)_")
_FINANCE_ID_SUFFIX = re.compile(r"(?<=\.pdf)-\d+$")


def finance_document_id(record_id: str) -> str:
    """The filing page a FinQA/ConvFinQA record is about: ``Single_ADI/2011/page_50.pdf-3`` ->
    ``ADI/2011/page_50.pdf``. Other ids (TAT-QA question uuids, file names) come back unchanged."""
    return _FINANCE_ID_SUFFIX.sub("", _FINANCE_ID_PREFIX.sub("", record_id))


def read_finance(path: str | Path) -> list[Document]:
    """The distinct contexts of a FinQA, TAT-QA or ConvFinQA file: ``pre_text``, the table rows
    as FinQA words them (``"the revenue of 2019 is $ 1,452 ;"``), ``post_text``, one per line."""
    return finance_documents(load_any(path))


def finance_documents(records: Iterable) -> list[Document]:
    """The distinct contexts of finance ``QARecord`` s, worded as :func:`read_finance` words them."""
    by_text: dict[str, tuple[str, str, str, list[str]]] = {}
    for record in records:
        header = record.table[0] if record.table else []
        rows = [row_to_text(header, row) for row in record.table[1:]]
        text = "\n".join(line for line in [*record.pre_text, *rows, *record.post_text] if line.strip())
        key = text_hash(text)
        doc_id = finance_document_id(record.id) if record.source != "tatqa" else f"context-{key[:12]}"
        by_text.setdefault(key, (doc_id, text, record.source, []))[3].append(record.id)
    return [Document(doc_id, text, source, tuple(ids)) for doc_id, text, source, ids in by_text.values()]


def read_phrasebank(path: str | Path, agreement: str = "50Agree") -> list[Document]:
    """Financial PhraseBank sentences from ``FinancialPhraseBank-v1.0.zip`` (``Sentences_<agreement>.txt``,
    latin-1, ``sentence@label`` per line); one document per sentence, labels dropped. ``50Agree``
    holds all 4,846 sentences; the other files are subsets."""
    path = Path(path)
    if not path.is_file():
        raise VfmError("file not found", where=str(path), fix="pass FinancialPhraseBank-v1.0.zip")
    with zipfile.ZipFile(path) as archive:
        names = [n for n in archive.namelist() if n.endswith(f"Sentences_{agreement}.txt") and "__MACOSX" not in n]
        if not names:
            raise VfmError(
                f"no Sentences_{agreement}.txt inside the zip",
                where=str(path),
                fix="use agreement 50Agree, 66Agree, 75Agree or AllAgree",
            )
        raw = archive.read(names[0]).decode("latin-1")
    lines = [line.rsplit("@", 1)[0].strip() for line in raw.splitlines() if "@" in line]
    return [Document(f"phrasebank-{i}", line, "phrasebank") for i, line in enumerate(lines) if line]
