"""Demo examples: synthetic questions over synthetic statements, as the JSON files a finance
bundle ships in ``examples/`` (and ``vfm predict`` reads).

Format (one question per file)::

    {"question": str, "table": [[header...], [row name, cells...], ...],
     "pre_text": [sentences], "post_text": [sentences],
     "gold": {"program": str, "answer": float | "yes" | "no"}}   # optional, for display
"""

from __future__ import annotations

import json

from vfm.plugins.finance.synthetic import generate

EXAMPLE_SEED = 424242
"""Examples are drawn with a seed no training or evaluation set uses."""


def example_files(n: int) -> dict[str, bytes]:
    """``n`` example questions of different kinds: bundle path -> JSON bytes."""
    records, kinds = [], set()
    for record in generate(20 * max(n, 1), seed=EXAMPLE_SEED):
        kind = record.program.split("(")[0] if record.program else record.answer_type
        if kind not in kinds or len(kinds) >= 6:
            kinds.add(kind)
            records.append(record)
        if len(records) == n:
            break
    return {f"examples/{i:02d}_{r.answer_type}.json": json.dumps(
        {"question": r.question, "table": r.table, "pre_text": r.pre_text, "post_text": r.post_text,
         "gold": {"program": r.program, "answer": r.answer}}, indent=2).encode("utf-8")
        for i, r in enumerate(records)}
