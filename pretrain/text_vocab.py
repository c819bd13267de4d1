"""Domain vocabulary: train a tokenizer from scratch, or extend a base tokenizer with the domain
terms it splits worst, initialising each new embedding row as the mean of its old pieces.

Candidates are money amounts with units (``$1.2 million``), percentages (``12.5%``), tickers
(``NYSE: XYZ``) and words of four letters or more (``EBITDA``, ``amortization``), counted on the
tokenizer's own normalised text (lower-cased for an uncased model). A candidate's score is
``count * (pieces - 1)``: the tokens it would save over the corpus; single-piece terms score 0.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from vfm.platform.errors import VfmError

_CANDIDATES = re.compile(
    r"\b(?:nyse|nasdaq|amex|lse|tsx)\s?:\s?[a-z]{1,5}\b"  # tickers
    r"|[$€£]\s?\d[\d,]*(?:\.\d+)?(?:\s(?:thousand|million|billion))?"  # money with a unit
    r"|\b\d+(?:\.\d+)?\s?%"  # percentages
    r"|\b[a-z][a-z\-]{2,}[a-z]\b",  # words
    re.IGNORECASE,
)

BERT_SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
GPT2_EOS = "<|endoftext|>"


@dataclass(frozen=True)
class DomainToken:
    """A term to add: its surface ``text`` (as the tokenizer sees it), corpus ``count``, the base
    tokenizer's ``pieces`` for it, and ``score = count * (len(pieces) - 1)``."""

    text: str
    count: int
    pieces: tuple[str, ...]
    score: int


def train_tokenizer(texts: Sequence[str], kind: str, vocab_size: int, lowercase: bool = True):
    """A new ``transformers`` tokenizer trained on ``texts`` with ``tokenizers``.

    Args:
        kind: ``"wordpiece"`` (a ``BertTokenizer``: [CLS]/[SEP]/[MASK]) or ``"bpe"`` (a byte-level
            ``GPT2Tokenizer`` with ``<|endoftext|>``).
    """
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import BertTokenizer, GPT2Tokenizer

    if kind == "wordpiece":
        tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
        tok.normalizer = normalizers.BertNormalizer(lowercase=lowercase)
        tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        trainer = trainers.WordPieceTrainer(
            vocab_size=vocab_size, special_tokens=list(BERT_SPECIALS), show_progress=False
        )
        tok.train_from_iterator(texts, trainer)
        return BertTokenizer(vocab=tok.get_vocab(), do_lower_case=lowercase)
    if kind == "bpe":
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        tok.train_from_iterator(
            texts,
            trainers.BpeTrainer(
                vocab_size=vocab_size,
                special_tokens=[GPT2_EOS],
                initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                show_progress=False,
            ),
        )
        model = json.loads(tok.to_str())["model"]
        return GPT2Tokenizer(vocab=model["vocab"], merges=[tuple(m) for m in model["merges"]])
    raise VfmError(f"unknown tokenizer kind {kind!r}", where="train_tokenizer(kind)", fix='use "wordpiece" or "bpe"')


def _is_byte_level(tokenizer) -> bool:
    """Byte-level BPE marks a preceding space inside the token (``Ġword``)."""
    pre = getattr(getattr(tokenizer, "backend_tokenizer", None), "pre_tokenizer", None)
    return "ByteLevel" in repr(pre)


def _surface(tokenizer, text: str) -> str:
    """The form a term takes inside running text: byte-level tokenizers see `` term`` with its space."""
    return " " + text if _is_byte_level(tokenizer) else text


def find_domain_tokens(tokenizer, texts: Sequence[str], top_k: int, min_count: int = 5) -> list[DomainToken]:
    """The ``top_k`` candidates by ``count * (pieces - 1)`` that the tokenizer splits (ties by text)."""
    normalizer = getattr(getattr(tokenizer, "backend_tokenizer", None), "normalizer", None)
    counts: Counter[str] = Counter()
    for text in texts:
        counts.update(m.group(0) for m in _CANDIDATES.finditer(normalizer.normalize_str(text) if normalizer else text))
    vocab = tokenizer.get_vocab()
    found = []
    for text, count in counts.items():
        if count < min_count or _surface(tokenizer, text) in vocab:
            continue
        pieces = tuple(tokenizer.tokenize(_surface(tokenizer, text)))
        if len(pieces) > 1 and tokenizer.unk_token not in pieces:
            found.append(DomainToken(text, count, pieces, count * (len(pieces) - 1)))
    found.sort(key=lambda t: (-t.score, t.text))
    return found[:top_k]


@torch.no_grad()
def add_domain_tokens(model, tokenizer, tokens: Sequence[DomainToken]) -> list[dict]:
    """Add ``tokens`` to ``tokenizer``, resize ``model``'s embeddings and set each new row (input,
    output when untied, and output bias) to the mean of its pieces' old rows.

    Returns:
        ``[{"token", "id", "pieces", "piece_ids", "count"}]`` for the tokens actually added.
    """
    from tokenizers import AddedToken

    piece_ids = [tokenizer.convert_tokens_to_ids(list(t.pieces)) for t in tokens]
    before = len(tokenizer)
    tokenizer.add_tokens(
        [
            AddedToken(
                _surface(tokenizer, t.text),
                single_word=not _is_byte_level(tokenizer),
                normalized=not _is_byte_level(tokenizer),
            )
            for t in tokens
        ]
    )
    model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    inputs, outputs = model.get_input_embeddings(), model.get_output_embeddings()
    untied = outputs is not None and outputs.weight.data_ptr() != inputs.weight.data_ptr()
    bias = getattr(outputs, "bias", None) if outputs is not None else None
    added = []
    for token, ids in zip(tokens, piece_ids, strict=True):
        new_id = tokenizer.convert_tokens_to_ids(_surface(tokenizer, token.text))
        if new_id < before:  # already present as an added token
            continue
        rows = torch.tensor(ids)
        inputs.weight[new_id] = inputs.weight[rows].mean(dim=0)
        if untied:
            outputs.weight[new_id] = outputs.weight[rows].mean(dim=0)
        if bias is not None and bias.shape[0] == len(tokenizer):
            bias[new_id] = bias[rows].mean()
        added.append(
            {
                "token": token.text,
                "id": int(new_id),
                "pieces": list(token.pieces),
                "piece_ids": [int(i) for i in ids],
                "count": token.count,
            }
        )
    return added
