"""Training and exporting the retriever's sentence encoder (torch side of
:mod:`vfm.plugins.finance.retrieval.dense`).

Every training question with gold evidence is one :class:`~vfm.finetune.bi_encoder.ContrastiveGroup`:
the question (with a conversation's earlier turns, as the retriever reads it), its document's units,
and the gold units as positives. The pretrained encoder is fine-tuned on them contrastively
(:func:`vfm.finetune.bi_encoder.train_bi_encoder`) into the run's ``dense_encoder/``.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vfm.finetune.bi_encoder import BiEncoderSettings, ContrastiveGroup, export_sentence_encoder, train_bi_encoder
from vfm.plugins.finance.data.records import QARecord
from vfm.plugins.finance.generation.features import record_question
from vfm.plugins.finance.retrieval.dense import ONNX_FILE, RUN_FOLDER, TOKENIZER_FILE, load_dense_encoder
from vfm.plugins.finance.retrieval.retriever import EvidenceRetriever, record_row_names

TRAINING_FOLDER = "dense_training"
"""Where the encoder's checkpoints and logs go, in the run."""


def contrastive_groups(records: Sequence[QARecord]) -> list[ContrastiveGroup]:
    """One group per record whose gold evidence is some but not all of its units."""
    groups = []
    for record in records:
        units = record.evidence()
        ids = list(units)
        positives = tuple(i for i, ident in enumerate(ids) if ident in set(record.gold_evidence))
        if positives and len(positives) < len(ids):
            groups.append(ContrastiveGroup(record_question(record), tuple(units.values()), positives))
    return groups


def train_dense_encoder(
    records: Sequence[QARecord], base: str | Path, settings: BiEncoderSettings, run: Path, *, progress: bool = True
) -> dict[str, Any]:
    """Fine-tune the encoder in the Hugging Face folder ``base`` on ``records`` into ``run/dense_encoder``
    (kept when it is already there; a killed run resumes from ``run/dense_training/checkpoints``)."""
    groups = contrastive_groups(records)
    return train_bi_encoder(
        base, groups, settings, Path(run) / TRAINING_FOLDER, model_dir=Path(run) / RUN_FOLDER, progress=progress
    )


def export_dense_encoder(run: Path, staging: Path, records: Sequence[QARecord]) -> tuple[dict, dict]:
    """The run's encoder to ``staging/dense_encoder.onnx`` (with ``dense_tokenizer.json``), checked
    against torch: ``(graph report, ranking check)``. The ranking check scores ``records``' evidence with
    the run's retriever twice, torch and ONNX encoder: ``{"count", "equal"`` (same order),
    ``"max_probability_diff", "passed"}`` (passed: every unit's probability within 1e-3).

    Raises:
        VfmError: the ONNX embeddings differ from torch's beyond tolerance.
    """
    torch_retriever = EvidenceRetriever.load(run / "retriever.json")
    length = int(torch_retriever.dense_max_length or 0)
    texts = [text for record in records for text in (record_question(record), *record.evidence().values())]
    graph = export_sentence_encoder(run / RUN_FOLDER, staging / ONNX_FILE, texts[:64], length)
    shutil.copyfile(run / RUN_FOLDER / "tokenizer.json", staging / TOKENIZER_FILE)
    onnx_retriever = EvidenceRetriever(torch_retriever.model, load_dense_encoder(staging, length), length)
    equal, worst = 0, 0.0
    for record in records:
        args = (record_question(record), record.evidence(), record_row_names(record), len(record.pre_text))
        expected, got = torch_retriever.score_units(*args), onnx_retriever.score_units(*args)
        equal += [i for i, _ in expected] == [i for i, _ in got]
        scores = dict(got)
        worst = max([worst, *(abs(p - scores[i]) for i, p in expected)])
    check = {"count": len(records), "equal": equal, "max_probability_diff": worst, "passed": worst <= 1e-3}
    return graph, check
