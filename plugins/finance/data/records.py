"""One question over one financial document: the record every finance loader returns.

FinQA, TAT-QA, ConvFinQA and the synthetic generator all become :class:`QARecord`, so
retrieval, program generation, metrics and the demo see one shape. Evidence ids follow
FinQA: ``table_i`` is row ``i`` of the table (the header is ``table_0``) and ``text_i``
is sentence ``i`` of ``pre_text + post_text``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from vfm.platform.errors import VfmError

SOURCES = ("finqa", "tatqa", "convfinqa", "synthetic")
"""Where a record comes from."""

ANSWER_TYPES = ("arithmetic", "comparison", "span", "multi-span", "count")
"""``arithmetic``: a computed number; ``comparison``: yes/no from ``greater``; the rest
are TAT-QA's span (one extract), multi-span (several) and count."""

SCALES = ("", "thousand", "million", "billion", "percent")
"""TAT-QA's answer scales; FinQA and ConvFinQA answers carry none (``""``)."""


@dataclass(frozen=True)
class QARecord:
    """A question with its document, gold answer and, when known, its gold program.

    Attributes:
        id: unique within its source file.
        pre_text: sentences (FinQA) or paragraphs (TAT-QA) before the table.
        table: rows of cells; the first row is the header, the first cell of a row its name.
        post_text: sentences after the table.
        question: the question (the final turn, for a conversation).
        answer: the gold answer: a float for numbers, ``"yes"``/``"no"`` for comparisons,
            the text for spans (several spans joined with ``"; "``).
        program: the gold FinQA program, or None when the answer is not computed.
        gold_evidence: ids of the rows and sentences the answer rests on.
        scale: one of :data:`SCALES`; the answer is in these units.
        answer_type: one of :data:`ANSWER_TYPES`.
        source: one of :data:`SOURCES`.
        answer_spans: the gold spans of span and multi-span answers, as the TAT-QA
            metric compares them; empty otherwise.
        history: earlier turns of a conversation (ConvFinQA), oldest first.
    """

    id: str
    pre_text: list[str]
    table: list[list[str]]
    post_text: list[str]
    question: str
    answer: str | float
    program: str | None = None
    gold_evidence: list[str] = field(default_factory=list)
    scale: str = ""
    answer_type: str = "arithmetic"
    source: str = "synthetic"
    answer_spans: list[str] = field(default_factory=list)
    history: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        for name, value, allowed in (
            ("source", self.source, SOURCES),
            ("scale", self.scale, SCALES),
            ("answer_type", self.answer_type, ANSWER_TYPES),
        ):
            if value not in allowed:
                raise VfmError(
                    f"{name} {value!r} is not one of {', '.join(map(repr, allowed))}",
                    where=f"record {self.id}",
                    fix=f"set {name} to a listed value",
                )
        unknown = [ident for ident in self.gold_evidence if ident not in self.evidence()]
        if unknown:
            raise VfmError(
                f"gold evidence {', '.join(unknown)} is not a row or sentence of the document",
                where=f"record {self.id}",
                fix="use ids table_<row> and text_<sentence>",
            )

    def evidence(self) -> dict[str, str]:
        """Every retrievable piece of the document by id: table rows as FinQA words them
        (``"year the revenue of 2019 is $ 1,452 ;"``), then sentences."""
        header = self.table[0] if self.table else []
        pieces = {f"table_{i}": row_to_text(header, row) for i, row in enumerate(self.table)}
        pieces.update({f"text_{i}": text for i, text in enumerate(self.pre_text + self.post_text)})
        return pieces


def row_to_text(header: list[str], row: list[str]) -> str:
    """A table row in words, as FinQA's retriever writes it: the header's first cell, then
    ``the <row name> of <column> is <cell> ;`` for each column."""
    parts = [header[0]] if header and header[0] else []
    parts += [f"the {row[0]} of {head} is {cell} ;" for head, cell in zip(header[1:], row[1:], strict=False)]
    return " ".join(" ".join(parts).split())
