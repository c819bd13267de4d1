"""Demo examples: synthetic questions over synthetic statements, as the JSON files a finance
bundle ships in ``examples/`` (and ``vfm predict`` reads).

Format (one question per file)::

    {"question": str, "table": [[header...], [row name, cells...], ...],
     "pre_text": [sentences], "post_text": [sentences],
     "gold": {"program": str | None, "answer": float | "yes" | "no" | [cell texts]}}   # optional, for display

The last example (of two or more) asks for a table cell (:func:`generate_lookups`), which the
bundle's table lookup answers when it has one.
"""

from __future__ import annotations

import json

from vfm.plugins.finance.data.synthetic import generate, generate_lookups

EXAMPLE_SEED = 424242
"""Examples are drawn with a seed no training or evaluation set uses."""


def example_files(n: int) -> dict[str, bytes]:
    """``n`` example questions of different kinds: bundle path -> JSON bytes."""
    programs = n - 1 if n >= 2 else n
    records, kinds = [], set()
    for record in generate(20 * max(programs, 1), seed=EXAMPLE_SEED):
        if len(records) == programs:
            break
        kind = record.program.split("(")[0] if record.program else record.answer_type
        if kind not in kinds or len(kinds) >= 6:
            kinds.add(kind)
            records.append(record)
    records += [r for r in generate_lookups(20, seed=EXAMPLE_SEED) if r.answer_type == "span"][: n - programs]
    return {
        f"examples/{i:02d}_{r.answer_type}.json": json.dumps(
            {
                "question": r.question,
                "table": r.table,
                "pre_text": r.pre_text,
                "post_text": r.post_text,
                "gold": {"program": r.program, "answer": r.answer_spans or r.answer},
            },
            indent=2,
        ).encode("utf-8")
        for i, r in enumerate(records)
    }
