"""Scores of generated commentary and answers against the simulator's ground truth.

- **Action / cause accuracy**: the generated sentence is parsed back into an action and a cause
  (:func:`vfm.plugins.driving.commentary.parse_commentary`) and compared with the labels derived
  from the simulator state; a sentence that names no action (or no cause) counts as wrong.
  Balanced accuracy (the mean per-class recall) is reported beside it, since a few actions
  (keep speed, accelerate) dominate.
- **QA accuracy**: normalised exact match of the answer (case, punctuation and spacing ignored),
  overall and per question kind.
- **Caption metrics**: BLEU-4, METEOR, CIDEr-D (:mod:`vfm.plugins.driving.caption_metrics`).
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any

from vfm.plugins.driving.caption_metrics import caption_scores
from vfm.plugins.driving.commentary import QUESTIONS, parse_commentary
from vfm.plugins.driving.records import DrivingSample

_KIND_BY_QUESTION = {question.lower(): kind for kind, question in QUESTIONS.items()}


def normalise_answer(text: str) -> str:
    """``"Yes, it's safe."`` -> ``"yes it's safe"``."""
    return " ".join(re.sub(r"[^\w\s'.]|(?<!\d)\.|\.(?!\d)", " ", text.lower()).split())


def question_kind(question: str) -> str:
    """``action``, ``left``, ``right``, ``ahead``, ``speed``, ``gap``, ``crossing``, ``why`` or ``other``."""
    text = question.strip().lower()
    if text in _KIND_BY_QUESTION:
        return _KIND_BY_QUESTION[text]
    return "why" if text.startswith("why") else "other"


def _accuracy(predicted: Sequence[str | None], gold: Sequence[str]) -> dict[str, Any]:
    """Accuracy, balanced accuracy and per-class recall of labels (None: no label parsed)."""
    right = [p == g for p, g in zip(predicted, gold, strict=True)]
    per_class: dict[str, list[bool]] = defaultdict(list)
    for ok, g in zip(right, gold, strict=True):
        per_class[g].append(ok)
    recall = {label: sum(oks) / len(oks) for label, oks in sorted(per_class.items())}
    return {"accuracy": sum(right) / len(right) if right else None,
            "balanced_accuracy": sum(recall.values()) / len(recall) if recall else None,
            "per_class_recall": recall, "support": dict(sorted(Counter(gold).items())),
            "unparsed": sum(p is None for p in predicted), "count": len(right)}


def commentary_metrics(predicted: Sequence[str], samples: Sequence[DrivingSample]) -> dict[str, Any]:
    """Scores of ``predicted[i]`` (the model's commentary on ``samples[i]``'s clip).

    Returns:
        ``{"action": {...}, "cause": {...}, "caption": {...}}``: the action and cause
        accuracies (over samples that have the label) and the caption metrics against each
        sample's reference commentary.
    """
    parsed = [parse_commentary(text) for text in predicted]
    scores: dict[str, Any] = {}
    for index, name in ((0, "action"), (1, "cause")):
        pairs = [(p[index], getattr(s, name)) for p, s in zip(parsed, samples, strict=True) if getattr(s, name)]
        scores[name] = _accuracy([p for p, _ in pairs], [g for _, g in pairs])
    with_text = [(p, s.commentary) for p, s in zip(predicted, samples, strict=True) if s.commentary]
    scores["caption"] = caption_scores([p for p, _ in with_text], [[r] for _, r in with_text])
    return scores


def qa_metrics(predicted: Sequence[str], questions: Sequence[str], answers: Sequence[str]) -> dict[str, Any]:
    """Exact-match accuracy of answers, overall and per :func:`question_kind`."""
    right = [normalise_answer(p) == normalise_answer(a) for p, a in zip(predicted, answers, strict=True)]
    by_kind: dict[str, list[bool]] = defaultdict(list)
    for ok, question in zip(right, questions, strict=True):
        by_kind[question_kind(question)].append(ok)
    return {"accuracy": sum(right) / len(right) if right else None,
            "per_kind": {kind: {"accuracy": sum(oks) / len(oks), "count": len(oks)}
                         for kind, oks in sorted(by_kind.items())},
            "count": len(right)}
