"""Domain text corpora: read documents, drop duplicates and anything from an evaluation set.

A :class:`Document` is one unit of text that is kept whole when a held-out split is made
(a filing's context, one PhraseBank sentence, one text file). Readers:

- :func:`read_text` — ``.txt`` files or folders of them (a document per file, paragraph or line);
- :func:`read_jsonl` — JSON Lines with a ``text`` field.

Domain readers live in their plugin (finance: :mod:`vfm.plugins.finance.data.corpus`).

:func:`build_corpus` removes duplicates (a hash of the normalised text) and excludes evaluation
documents by id *and* by content: a document is dropped when it shares its text or any long
sentence (``min_words``+ words, normalised) with an excluded one, so a ConvFinQA conversation
over a FinQA dev filing is excluded together with that filing.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from vfm.platform.errors import VfmError
from vfm.platform.fileio import read_jsonl_objects

_SENTENCE_BREAK = re.compile(r"(?<=[.!?;])\s+|\n+")
_WORD = re.compile(r"[a-z0-9]+")


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


def build_corpus(
    documents: Iterable[Document],
    exclude_ids: Iterable[str] = (),
    exclude_documents: Sequence[Document] = (),
    min_words: int = 8,
    id_key: Callable[[str], str] = lambda ident: ident,
) -> Corpus:
    """Keep the first copy of each distinct text, minus the excluded documents.

    Args:
        exclude_ids: document ids or record ids; each is matched, as is its ``id_key``, against a
            document's id, its ``id_key`` and its record ids.
        exclude_documents: documents of an evaluation set; any document sharing its text or a
            sentence of ``min_words``+ words with one of them is dropped.
        id_key: the id a domain groups ids under (e.g. a filing page for a question's id:
            :func:`vfm.plugins.finance.data.corpus.finance_document_id`); default the id itself.
    """
    ids = set(exclude_ids)
    ids |= {id_key(i) for i in ids}
    banned_texts = {text_hash(d.text) for d in exclude_documents}
    banned_sentences = set().union(*(_sentence_hashes(d.text, min_words) for d in exclude_documents))
    kept, seen, counts = [], set(), Counter()
    for doc in documents:
        counts["read"] += 1
        key = text_hash(doc.text)
        if key in seen:
            counts["duplicates"] += 1
        elif {doc.id, id_key(doc.id), *doc.record_ids} & ids:
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
