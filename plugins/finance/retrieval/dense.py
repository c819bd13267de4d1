"""The retriever's dense features: a pretrained sentence encoder, fine-tuned on the training questions
(:mod:`vfm.plugins.finance.retrieval.dense_training`), embeds the question and each evidence unit; a
unit's features are its cosine with the question, that cosine less the document's best, and its
reciprocal rank. The retriever's logistic regression weighs them with the lexical and layout features
(fusion), so a question the encoder misreads still has BM25 and the row names.

Where the encoder lives: a training run keeps it in torch (``dense_encoder/``, a Hugging Face folder);
a bundle holds its ONNX export (``dense_encoder.onnx``, ``dense_tokenizer.json``). Torch-free for a bundle.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from vfm.platform.errors import VfmError

DENSE_FEATURES = ("dense_cosine", "dense_cosine_relative", "dense_reciprocal_rank")
"""The features a dense encoder adds, after :data:`~vfm.plugins.finance.retrieval.retriever.FEATURES`."""

RUN_FOLDER = "dense_encoder"
ONNX_FILE, TOKENIZER_FILE = "dense_encoder.onnx", "dense_tokenizer.json"


def dense_features(encoder, question: str, units: Mapping[str, str]) -> np.ndarray:
    """``[N, 3]`` :data:`DENSE_FEATURES` of a document's units (``encoder``: a sentence encoder with
    ``embed(texts) -> [N, D]`` unit vectors, :class:`vfm.serve.sentence_encoder.CachedEncoder`)."""
    texts = list(units.values())
    cosine = encoder.embed(texts).astype(np.float64) @ encoder.embed([question])[0].astype(np.float64)  # [N]
    ranks = np.empty(len(cosine))
    ranks[np.argsort(-cosine, kind="stable")] = np.arange(1, len(cosine) + 1)
    return np.stack([cosine, cosine - cosine.max(), 1.0 / ranks], axis=1)


def load_dense_encoder(folder: Path, max_length: int):
    """The sentence encoder beside a retriever: a bundle's ONNX export, else a run's torch folder.

    The last two loaded are kept (with their embedding caches) while their files are unchanged: a run's
    evaluation builds a predictor per decoding mode over the same documents.

    Raises:
        VfmError: the folder holds neither.
    """
    folder = Path(folder).resolve()
    for marker in (folder / ONNX_FILE, folder / RUN_FOLDER / "config.json"):
        if marker.is_file():
            return _load_encoder(folder, max_length, marker.stat().st_mtime_ns)
    raise VfmError(
        f"the retriever uses a sentence encoder, but neither {ONNX_FILE} nor {RUN_FOLDER}/ is beside it",
        where=str(folder),
        fix="pass the whole run or bundle folder, as training or export wrote it",
    )


@functools.lru_cache(maxsize=2)
def _load_encoder(folder: Path, max_length: int, _modified_ns: int):
    if (folder / ONNX_FILE).is_file():
        from vfm.serve.sentence_encoder import OnnxSentenceEncoder

        return OnnxSentenceEncoder(folder / ONNX_FILE, folder / TOKENIZER_FILE, max_length)
    from vfm.finetune.bi_encoder import TorchSentenceEncoder

    return TorchSentenceEncoder(folder / RUN_FOLDER, max_length)
