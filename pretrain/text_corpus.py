"""Domain text corpora: read documents, drop duplicates and anything from an evaluation set.

A :class:`Document` is one unit of text that is kept whole when a held-out split is made
(a filing's context, one PhraseBank sentence, one text file). Readers:

- :func:`read_text` — ``.txt`` files or folders of them (a document per file, paragraph or line);
- :func:`read_jsonl` — JSON Lines with a ``text`` field;
- :func:`read_finance` — FinQA / TAT-QA / ConvFinQA contexts (via the finance plugin's
  ``load_any``): ``pre_text``, the table rows as sentences, ``post_text``; one document per
  filing page, however many questions it carries;
- :func:`read_phrasebank` — Financial PhraseBank sentences, read inside its zip, labels dropped.

:func:`build_corpus` removes duplicates (a hash of the normalised text) and excludes evaluation
documents by id *and* by content: a document is dropped when it shares its text or any long
sentence (``min_words``+ words, normalised) with an excluded one, so a ConvFinQA conversation
over a FinQA dev filing is excluded together with that filing.
"""

from __future__ import annotations

import hashlib
import re
import zipfile
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from vfm.platform.errors import VfmError
from vfm.platform.fileio import read_jsonl_objects

_SENTENCE_BREAK = re.compile(r"(?<=[.!?;])\s+|\n+")
_WORD = re.compile(r"[a-z0-9]+")
_FINANCE_ID_PREFIX = re.compile(r"^(?:Single|Double)_")
_FINANCE_ID_SUFFIX = re.compile(r"(?<=\.pdf)-\d+$")


@dataclass(frozen=True)
class Document:
    """One document. ``id`` is unique within its source; ``record_ids`` are the ids of the
    dataset records (questions) it was read from, so an evaluation set can be excluded by them."""

    id: str
    text: str
    source: str
    record_ids: tuple[str, ...] = ()


@dataclass
class Corpus:
    """Documents kept, and ``report``: ``read``, ``kept``, ``duplicates``, ``excluded_by_id``,
    ``excluded_by_content``, ``by_source`` (``{source: {"documents", "characters"}}``)."""

    documents: list[Document]
    report: dict = field(default_factory=dict)

    def texts(self) -> list[str]:
        return [doc.text for doc in self.documents]


def normalise(text: str) -> str:
    """Lower-case words and numbers joined by single spaces: ``"$ 1,452 ."`` -> ``"1 452"``."""
    return " ".join(_WORD.findall(text.lower()))


def text_hash(text: str) -> str:
    return hashlib.sha1(normalise(text).encode("utf-8")).hexdigest()


def _sentence_hashes(text: str, min_words: int) -> set[str]:
    """Hashes of the normalised sentences of at least ``min_words`` words."""
    sentences = (normalise(part) for part in _SENTENCE_BREAK.split(text))
    return {hashlib.sha1(s.encode("utf-8")).hexdigest() for s in sentences if s.count(" ") + 1 >= min_words}


def read_text(path: str | Path, unit: str = "file", source: str = "text") -> list[Document]:
    """Documents from a ``.txt`` file or every ``*.txt`` under a folder (sorted).

    Args:
        unit: ``"file"`` (one document per file), ``"paragraph"`` (blank-line separated) or ``"line"``.
    """
    path = Path(path)
    if unit not in ("file", "paragraph", "line"):
        raise VfmError(f"unknown unit {unit!r}", where="read_text(unit)", fix='use "file", "paragraph" or "line"')
    files = sorted(path.rglob("*.txt")) if path.is_dir() else [path]
    if not path.exists() or not files:
        raise VfmError("no text files found", where=str(path), fix="pass a .txt file or a folder holding .txt files")
    docs = []
    for file in files:
        text = file.read_text(encoding="utf-8", errors="replace")
        name = str(file.relative_to(path)) if path.is_dir() else file.name
        parts = {"file": [text], "paragraph": re.split(r"\n\s*\n", text), "line": text.splitlines()}[unit]
        docs += [
            Document(f"{name}#{i}" if unit != "file" else name, part.strip(), source)
            for i, part in enumerate(parts)
            if part.strip()
        ]
    return docs


def read_jsonl(path: str | Path, field_name: str = "text", source: str = "jsonl") -> list[Document]:
    """One document per JSON line, its text in ``field_name``; the id is the line's ``id`` when present."""
    path = Path(path)
    docs = []
    for number, item in read_jsonl_objects(path, fix="write one JSON object per line"):
        if not isinstance(item.get(field_name), str):
            raise VfmError(
                f"line {number} has no string field {field_name!r}",
                where=str(path),
                fix=f"give every line a {field_name!r} field, or pass the field's name",
            )
        docs.append(Document(str(item.get("id", f"{path.name}:{number}")), item[field_name], source))
    return docs


def finance_document_id(record_id: str) -> str:
    """The filing page a FinQA/ConvFinQA record is about: ``Single_ADI/2011/page_50.pdf-3`` ->
    ``ADI/2011/page_50.pdf``. Other ids (TAT-QA question uuids, file names) come back unchanged."""
    return _FINANCE_ID_SUFFIX.sub("", _FINANCE_ID_PREFIX.sub("", record_id))


def read_finance(path: str | Path) -> list[Document]:
    """The distinct contexts of a FinQA, TAT-QA or ConvFinQA file: ``pre_text``, the table rows
    as FinQA words them (``"the revenue of 2019 is $ 1,452 ;"``), ``post_text``, one per line."""
    from vfm.plugins.finance.loaders import load_any

    return finance_documents(load_any(path))


def finance_documents(records: Iterable) -> list[Document]:
    """The distinct contexts of finance ``QARecord`` s, worded as :func:`read_finance` words them."""
    from vfm.plugins.finance.records import row_to_text

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


def build_corpus(
    documents: Iterable[Document],
    exclude_ids: Iterable[str] = (),
    exclude_documents: Sequence[Document] = (),
    min_words: int = 8,
) -> Corpus:
    """Keep the first copy of each distinct text, minus the excluded documents.

    Args:
        exclude_ids: document ids (``ADI/2011/page_50.pdf``), record ids (``ADI/2011/page_50.pdf-3``,
            a TAT-QA question uid) or FinQA/ConvFinQA ids of either form; matched against both.
        exclude_documents: documents of an evaluation set; any document sharing its text or a
            sentence of ``min_words``+ words with one of them is dropped.
    """
    ids = set(exclude_ids)
    ids |= {finance_document_id(i) for i in ids}
    banned_texts = {text_hash(d.text) for d in exclude_documents}
    banned_sentences = set().union(*(_sentence_hashes(d.text, min_words) for d in exclude_documents))
    kept, seen, counts = [], set(), Counter()
    for doc in documents:
        counts["read"] += 1
        key = text_hash(doc.text)
        if key in seen:
            counts["duplicates"] += 1
        elif {doc.id, finance_document_id(doc.id), *doc.record_ids} & ids:
            counts["excluded_by_id"] += 1
        elif key in banned_texts or _sentence_hashes(doc.text, min_words) & banned_sentences:
            counts["excluded_by_content"] += 1
        else:
            kept.append(doc)
        seen.add(key)
    by_source: dict[str, dict[str, int]] = {}
    for doc in kept:
        entry = by_source.setdefault(doc.source, {"documents": 0, "characters": 0})
        entry["documents"] += 1
        entry["characters"] += len(doc.text)
    report = {
        "read": counts["read"],
        "kept": len(kept),
        "duplicates": counts["duplicates"],
        "excluded_by_id": counts["excluded_by_id"],
        "excluded_by_content": counts["excluded_by_content"],
        "by_source": by_source,
    }
    return Corpus(kept, report)
