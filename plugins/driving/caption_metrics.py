"""Caption metrics from the reference implementation (``pycocoevalcap``, the COCO caption
evaluation code that BDD-X, LINGO and DriveLM report with): BLEU-4, METEOR 1.5 and CIDEr-D.

Captions are lower-cased and split into words and punctuation here, in Python, rather than by
the Stanford PTB tokenizer the COCO code can call, so that BLEU and CIDEr need no Java. METEOR is
the official Java scorer (with its paraphrase tables); where no ``java`` is on the PATH it is
reported as ``None`` with the reason, never as a made-up number.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Mapping, Sequence
from typing import Any

_WORDS = re.compile(r"[a-z0-9]+(?:[.'][a-z0-9]+)*|[^\sa-z0-9]")


def caption_tokens(text: str) -> str:
    """``"Slowing down: the car's 37.5 m ahead."`` -> ``"slowing down : the car's 37.5 m ahead ."``."""
    return " ".join(_WORDS.findall(text.lower()))


def caption_scores(predictions: Sequence[str], references: Sequence[Sequence[str]]) -> dict[str, Any]:
    """Corpus BLEU-1..4, METEOR and CIDEr-D of ``predictions[i]`` against ``references[i]``.

    Args:
        predictions: one generated caption per sample.
        references: one or more reference captions per sample.

    Returns:
        ``{"bleu_1".."bleu_4", "cider", "meteor" (None without Java), "meteor_note", "count"}``;
        CIDEr on the usual 0-10 scale (published numbers are often x100).
    """
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider

    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions for {len(references)} reference sets")
    if not predictions:
        return {"count": 0}
    res = {i: [caption_tokens(p) or "<empty>"] for i, p in enumerate(predictions)}
    gts = {i: [caption_tokens(r) for r in refs] for i, refs in enumerate(references)}
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    cider, _ = Cider().compute_score(gts, res)
    meteor, note = _meteor(gts, res)
    return {
        **{f"bleu_{n + 1}": float(b) for n, b in enumerate(bleu)},
        "cider": float(cider),
        "meteor": meteor,
        "meteor_note": note,
        "count": len(predictions),
    }


def _meteor(gts: Mapping[int, list[str]], res: Mapping[int, list[str]]) -> tuple[float | None, str]:
    """METEOR 1.5 from the official jar, or ``(None, why)``."""
    if shutil.which("java") is None:
        return None, "not computed: METEOR 1.5 is a Java program and no java is on the PATH"
    from pycocoevalcap.meteor.meteor import Meteor

    try:
        scorer = Meteor()
        score, _ = scorer.compute_score(dict(gts), dict(res))
    except (OSError, ValueError) as err:
        return None, f"not computed: the METEOR jar failed ({type(err).__name__}: {err})"
    return float(score), "METEOR 1.5 (official jar, English, normalised)"
