"""From documents to training blocks: held-out split by document, mixing by tokens, packing.

documents --split_heldout--> train / held-out documents (whole documents, stable hash split)
          --tokenize------> token ids per document (no special tokens)
          --mix_by_tokens-> domain + general documents, general share of tokens = ratio
          --pack_blocks---> [N, block_size] blocks, documents separated by a separator token
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence

import torch

from vfm.platform.errors import VfmError
from vfm.pretrain.text_corpus import Document


def split_heldout(
    documents: Sequence[Document], fraction: float, seed: int = 0
) -> tuple[list[Document], list[Document]]:
    """(train, held-out): a document is held out when a hash of ``(seed, source, id)`` falls
    below ``fraction``, so the split of a document never changes when others are added."""
    if not 0.0 <= fraction < 1.0:
        raise VfmError(
            f"held-out fraction {fraction} is outside [0, 1)", where="split_heldout(fraction)", fix="use e.g. 0.05"
        )
    train, heldout = [], []
    for doc in documents:
        digest = hashlib.sha1(f"{seed}|{doc.source}|{doc.id}".encode()).digest()
        (heldout if int.from_bytes(digest[:8], "big") / 2**64 < fraction else train).append(doc)
    return train, heldout


def tokenize(tokenizer, texts: Sequence[str], batch: int = 256) -> list[list[int]]:
    """Token ids of each text, without special tokens (and without length warnings)."""
    ids: list[list[int]] = []
    for start in range(0, len(texts), batch):
        chunk = list(texts[start : start + batch])
        if getattr(tokenizer, "is_fast", False):
            ids += [enc.ids for enc in tokenizer.backend_tokenizer.encode_batch(chunk, add_special_tokens=False)]
        else:
            ids += tokenizer(chunk, add_special_tokens=False, verbose=False)["input_ids"]
    return ids


def mix_by_tokens(
    domain: Sequence[list[int]], general: Sequence[list[int]], ratio: float, seed: int = 0
) -> tuple[list[list[int]], dict]:
    """All domain documents plus general ones making up ``ratio`` of the tokens, shuffled together.

    General documents are taken in a seeded random order, passing over them again when there are
    too few (``general_passes`` > 1 says so), and the last one is cut to hit the ratio exactly.

    Returns:
        (documents, stats) with stats ``domain_tokens``, ``general_tokens``, ``general_share``,
        ``general_passes``.
    """
    if not 0.0 <= ratio < 1.0:
        raise VfmError(
            f"general mixing ratio {ratio} is outside [0, 1)",
            where="mix_ratio_general",
            fix="use 0 (domain only) up to e.g. 0.5",
        )
    rng = random.Random(seed)
    domain_tokens = sum(map(len, domain))
    docs = [list(d) for d in domain if d]
    want = round(ratio / (1.0 - ratio) * domain_tokens) if ratio > 0 else 0
    general = [g for g in general if g]
    if want and not general:
        raise VfmError(
            f"mix_ratio_general is {ratio} but the general corpus is empty",
            where="mix_ratio_general",
            fix="pass a general-text corpus or set mix_ratio_general=0",
        )
    taken, passes = 0, 0
    while taken < want:
        order = list(range(len(general)))
        rng.shuffle(order)
        passes += 1
        for i in order:
            piece = general[i][: want - taken]
            docs.append(list(piece))
            taken += len(piece)
            if taken >= want:
                break
    rng.shuffle(docs)
    total = domain_tokens + taken
    return docs, {
        "domain_tokens": domain_tokens,
        "general_tokens": taken,
        "general_share": round(taken / total, 4) if total else 0.0,
        "general_passes": passes,
    }


def pack_blocks(
    documents: Sequence[list[int]], block_size: int, separator_id: int, wrap: tuple[int, int] | None = None
) -> torch.Tensor:
    """Concatenate documents, each followed by ``separator_id``, and cut into blocks.

    Args:
        wrap: ``(first_id, last_id)`` put around each block's ``block_size - 2`` tokens (an
            encoder's ``[CLS] ... [SEP]``); None for a decoder, whose blocks are plain windows.

    Returns:
        blocks: [N, block_size] int64; the tail that does not fill a block is dropped.
    """
    inner = block_size - (2 if wrap else 0)
    if inner < 1:
        raise VfmError(f"block_size {block_size} is too small", where="block_size", fix="use e.g. 128")
    stream = torch.tensor([t for doc in documents for t in (*doc, separator_id)], dtype=torch.long)  # [T]
    n = len(stream) // inner
    blocks = stream[: n * inner].view(n, inner)  # [N, inner]
    if wrap:
        first = torch.full((n, 1), wrap[0], dtype=torch.long)
        last = torch.full((n, 1), wrap[1], dtype=torch.long)
        blocks = torch.cat([first, blocks, last], dim=1)  # [N, block_size]
    return blocks
