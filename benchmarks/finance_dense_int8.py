"""Would INT8 pay for the finance dense retriever? A bundle's sentence encoder (fp32 ONNX) against its dynamic
INT8 quantization (onnxruntime's ``quantize_dynamic``, weights int8 per channel), side by side in one
process: size, embedding speed, the embeddings' agreement, and the bundle retriever's recall@1/3/5 on
FinQA dev and the TAT-QA held-out part with each.

    python benchmarks/finance_dense_int8.py --data-dir $VFM_DATA_DIR --bundle BUNDLE_WITH_DENSE_RETRIEVER
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--bundle", type=Path, required=True)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    os.environ["VFM_NUM_THREADS"] = str(args.threads)
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from vfm.plugins.finance.data.data_splits import load_real_data
    from vfm.plugins.finance.generation.features import record_question
    from vfm.plugins.finance.retrieval.dense import ONNX_FILE, TOKENIZER_FILE
    from vfm.plugins.finance.retrieval.retriever import EvidenceRetriever, retrieval_recall
    from vfm.serve.sentence_encoder import OnnxSentenceEncoder

    fp32 = EvidenceRetriever.load(args.bundle / "retriever.json")
    length = int(fp32.dense_max_length or 0)
    work = Path(tempfile.mkdtemp())
    int8_path = work / ONNX_FILE
    quantize_dynamic(args.bundle / ONNX_FILE, int8_path, weight_type=QuantType.QInt8, per_channel=True)
    shutil.copyfile(args.bundle / TOKENIZER_FILE, work / TOKENIZER_FILE)
    int8 = EvidenceRetriever(fp32.model, OnnxSentenceEncoder(int8_path, work / TOKENIZER_FILE, length), length)

    real = load_real_data(args.data_dir)
    sets = {"finqa_dev": real.finqa_dev, "tatqa_held_out": real.tatqa_held_out}
    texts = sorted({t for r in real.finqa_dev for t in (record_question(r), *r.evidence().values())})[:2000]
    result: dict = {}
    for name, retriever in (("fp32", fp32), ("int8", int8)):
        encoder = retriever.dense
        started = time.perf_counter()
        vectors = encoder.embed(texts)
        seconds = time.perf_counter() - started
        result[name] = {
            "size_mb": round((args.bundle if name == "fp32" else work).joinpath(ONNX_FILE).stat().st_size / 2**20, 1),
            "texts_per_s": round(len(texts) / seconds, 1),
            **{
                s: {k: round(100 * v, 1) for k, v in retrieval_recall(retriever.rank, records).items() if k != "count"}
                for s, records in sets.items()
            },
        }
        result[name]["_vectors"] = vectors
    cosine = np.sum(result["fp32"].pop("_vectors") * result["int8"].pop("_vectors"), axis=1)
    result["embedding_cosine_fp32_vs_int8"] = {
        "mean": round(float(cosine.mean()), 4),
        "min": round(float(cosine.min()), 4),
    }
    print(json.dumps(result, indent=2))
    print(
        f"# reproduce: python benchmarks/finance_dense_int8.py --data-dir {args.data_dir} --bundle {args.bundle} "
        f"--threads {args.threads}"
    )
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
