"""How well the weak-label program search labels the real data.

Prints, as JSON: on the FinQA training records (their programs hidden; the retriever fitted on the
other training sources and 300 synthetic records, so it never saw their evidence) how often the
search's label is the gold program, and how many unlabelled questions (FinQA dev prompts outside
the evaluation documents) get a label, by program shape:

    python benchmarks/finance_weak_labels.py --data-dir $VFM_DATA_DIR

See :mod:`vfm.plugins.finance.generation.program_search` for the search.
"""

from __future__ import annotations

import argparse
import json
import logging
from collections import Counter
from typing import Any

from vfm.plugins.finance.data.data_splits import RealData, load_real_data
from vfm.plugins.finance.data.synthetic import generate
from vfm.plugins.finance.generation.program_search import label_quality, label_records
from vfm.plugins.finance.retrieval.retriever import EvidenceRetriever


def search_report(real: RealData) -> dict[str, Any]:
    """The label quality on FinQA train and the labels found for the unlabelled questions of ``real``."""
    finqa = [r for r in real.train if r.source == "finqa"]
    retriever = EvidenceRetriever().fit([r for r in real.train if r.source != "finqa"] + generate(300, seed=0))
    labelled = label_records(real.unlabelled, retriever)
    shapes = Counter(" ".join(step.split("(")[0] for step in r.program.split("), ")) for r in labelled)
    return {
        "finqa_train": label_quality(finqa, retriever),
        "unlabelled": len(real.unlabelled),
        "labelled": len(labelled),
        "shapes": dict(shapes.most_common()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", help="the real data folder (default: $VFM_DATA_DIR)")
    args = parser.parse_args()
    logging.getLogger("bm25s").setLevel(logging.WARNING)
    print(json.dumps(search_report(load_real_data(args.data_dir)), indent=2))
    print(f"# reproduce: python benchmarks/finance_weak_labels.py --data-dir {args.data_dir or '$VFM_DATA_DIR'}")


if __name__ == "__main__":
    main()
