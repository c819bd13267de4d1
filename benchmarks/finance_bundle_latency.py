"""What a finance model costs to serve: size on disk, load time, memory and latency per question, side by side
for bundles (ONNX, torch-free) and training runs (the same model in torch eager), in one process.

Each model answers the first ``--questions`` FinQA dev questions once, in order (each document new to it,
so the dense retriever embeds its units: the cold cost a user pays on a new report). Memory is the
process's resident set growth while the model loads and answers (``psutil``; models are measured one
after the other, so a later one can reuse memory an earlier one freed: read it as a rough figure).

    python benchmarks/finance_bundle_latency.py --data-dir $VFM_DATA_DIR --models BUNDLE_OR_RUN ...
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import psutil


def folder_size_mb(folder: Path, skip: tuple[str, ...] = ("checkpoints", "logs", "dense_training")) -> float:
    files = [p for p in folder.rglob("*") if p.is_file() and not set(p.relative_to(folder).parts) & set(skip)]
    return round(sum(p.stat().st_size for p in files) / 2**20, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--models", type=Path, nargs="+", required=True, help="bundles and/or training runs")
    parser.add_argument("--questions", type=int, default=50)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    os.environ["VFM_NUM_THREADS"] = str(args.threads)
    import torch

    from vfm.plugins.finance.data.data_splits import load_real_data
    from vfm.plugins.finance.generation.decode import ProgramPredictor

    torch.set_num_threads(args.threads)
    records = load_real_data(args.data_dir).finqa_dev[: args.questions]
    process = psutil.Process()
    rows = {}
    for folder in args.models:
        kind = "bundle (onnx)" if (folder / "encoder.onnx").is_file() else "run (torch eager)"
        rss = process.memory_info().rss
        started = time.perf_counter()
        model = ProgramPredictor(folder)
        load_s = time.perf_counter() - started
        seconds = []
        for record in records:
            tick = time.perf_counter()
            model.predict(record.question, record.table, record.pre_text, record.post_text, record.history)
            seconds.append(time.perf_counter() - tick)
        rows[str(folder)] = {
            "kind": kind,
            "dense_retriever": model.retriever.dense is not None,
            "size_mb": folder_size_mb(folder),
            "load_s": round(load_s, 2),
            "latency_p50_s": round(float(np.median(seconds)), 3),
            "latency_mean_s": round(float(np.mean(seconds)), 3),
            "rss_growth_mb": round((process.memory_info().rss - rss) / 2**20, 1),
        }
    print(json.dumps(rows, indent=2))
    print("\n| model | kind | dense retriever | size MB | load s | p50 s/question | mean s/question | RSS growth MB |")
    print("|---|---|---|---|---|---|---|---|")
    for name, row in rows.items():
        print(
            f"| {Path(name).name} | {row['kind']} | {row['dense_retriever']} | {row['size_mb']} | {row['load_s']} | "
            f"{row['latency_p50_s']} | {row['latency_mean_s']} | {row['rss_growth_mb']} |"
        )
    print(
        f"\n# reproduce: python benchmarks/finance_bundle_latency.py --data-dir {args.data_dir} --models "
        f"{' '.join(map(str, args.models))} --questions {args.questions} --threads {args.threads}"
    )


if __name__ == "__main__":
    main()
