"""Does every gold program in the dataset files execute to its gold answer (the executor against the data)?

Prints a summary per file and every mismatch; exits 1 when a program fails or gives another answer:

    python benchmarks/finance_check_gold.py $VFM_DATA_DIR/finqa/train_sample100.original.json \\
        $VFM_DATA_DIR/tatqa/tatqa_dataset_dev.json $VFM_DATA_DIR/convfinqa/convfinqa_dev.pot_format.json

See :func:`vfm.plugins.finance.data.check_gold.check_gold_programs` for the rules.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from vfm.platform.errors import VfmError
from vfm.plugins.finance.data.check_gold import check_gold_programs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="+", type=Path, help="FinQA, TAT-QA or ConvFinQA JSON files")
    args = parser.parse_args()
    failed = False
    for path in args.files:
        try:
            report = check_gold_programs(path)
        except VfmError as err:
            print(f"error: {err}", file=sys.stderr)
            failed = True
            continue
        print(report.summary())
        for mismatch in report.mismatches:
            print(f"  {mismatch.id}: {mismatch.program} — {mismatch.reason}")
        failed = failed or bool(report.mismatches)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
