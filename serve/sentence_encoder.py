"""Sentence embeddings without torch: a bi-encoder exported to ONNX (``input_ids``, ``attention_mask``
-> mean-pooled, L2-normalised ``sentence_embedding``), read with the model's own ``tokenizer.json``.

The same tokenization (:func:`text_batch`) feeds the torch encoder of a training run
(:class:`vfm.finetune.bi_encoder.TorchSentenceEncoder`), so a run and its bundle see identical ids.
Torch-free: onnxruntime, tokenizers and numpy.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from vfm.platform.errors import VfmError

CACHE_SIZE = 20_000
"""Embeddings kept per encoder, by text (least recently used dropped first): a document's units are
embedded once however often its questions are asked."""


def load_tokenizer(path: str | Path, max_length: int):
    """A ``tokenizers.Tokenizer`` from ``tokenizer.json`` that truncates to ``max_length`` tokens and
    pads a batch to its longest text.

    Raises:
        VfmError: the file is missing or not a fast tokenizer's JSON.
    """
    from tokenizers import Tokenizer

    path = Path(path)
    try:
        tokenizer = Tokenizer.from_file(str(path))
    except Exception as err:  # tokenizers raises a bare Exception for a malformed file
        raise VfmError(
            f"cannot read the sentence encoder's tokenizer: {str(err).splitlines()[0]}",
            where=str(path),
            fix="save the encoder's fast tokenizer beside it (tokenizer.save_pretrained(folder))",
        ) from None
    pad = next((t for t in ("[PAD]", "<pad>") if tokenizer.token_to_id(t) is not None), None)
    tokenizer.enable_truncation(max_length)
    tokenizer.enable_padding(pad_id=0 if pad is None else tokenizer.token_to_id(pad), pad_token=pad or "[PAD]")
    return tokenizer


def text_batch(tokenizer, texts: Sequence[str]) -> dict[str, np.ndarray]:
    """``{"input_ids", "attention_mask"}``, each int64 ``[N, T]`` (T: the longest text, at most the
    tokenizer's truncation length)."""
    encodings = tokenizer.encode_batch(list(texts))
    return {
        "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
        "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
    }


class CachedEncoder:
    """The embedding cache and batching every sentence encoder shares; subclasses define
    :meth:`_embed_batch`."""

    def __init__(self, tokenizer, batch_size: int = 64):
        self.tokenizer, self.batch_size = tokenizer, batch_size
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()  # the app runs requests concurrently

    def _embed_batch(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        raise NotImplementedError

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """``[N, D]`` float32 unit vectors, one per text (cached by text; safe across threads)."""
        with self._lock:
            return self._embed(texts)

    def _embed(self, texts: Sequence[str]) -> np.ndarray:
        missing = sorted({t for t in texts if t not in self._cache}, key=len)  # similar lengths batch together
        for start in range(0, len(missing), self.batch_size):
            chunk = missing[start : start + self.batch_size]
            vectors = self._embed_batch(text_batch(self.tokenizer, chunk))
            self._cache.update(zip(chunk, vectors.astype(np.float32), strict=True))
        found = []
        for text in texts:
            self._cache.move_to_end(text)
            found.append(self._cache[text])
        while len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)
        return np.stack(found) if found else np.zeros((0, 0), np.float32)


class OnnxSentenceEncoder(CachedEncoder):
    """A bundle's sentence encoder: ``model`` (the ONNX graph) and ``tokenizer`` (its ``tokenizer.json``).

    Raises:
        VfmError: either file is missing or unreadable.
    """

    def __init__(self, model: str | Path, tokenizer: str | Path, max_length: int):
        from vfm.serve.runtime import onnx_session

        model = Path(model)
        if not model.is_file():
            raise VfmError("the sentence encoder's ONNX file is missing", where=str(model), fix="re-export the bundle")
        self.session = onnx_session(model)  # threads: VFM_NUM_THREADS
        super().__init__(load_tokenizer(tokenizer, max_length))

    def _embed_batch(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        return self.session.run(["sentence_embedding"], batch)[0]
