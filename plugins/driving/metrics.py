"""Scores of generated commentary and answers against the simulator's ground truth.

- **Action / cause accuracy**: the generated sentence is parsed back into an action and a cause
  (:func:`vfm.plugins.driving.commentary.parse_commentary`) and compared with the labels derived
  from the simulator state; a sentence that names no action (or no cause) counts as wrong.
  Balanced accuracy (the mean per-class recall) is reported beside it, since a few actions
  (keep speed, accelerate) dominate, and the confusion (what was said for each true label).
- **QA accuracy**: normalised exact match of the answer (case, punctuation and spacing ignored),
  overall and per question kind. The answers to "What are you doing?" and "Why are you ...?" are
  free sentences drawn from several phrasings, so exact match against the one reference mostly
  scores the phrasing; for those two kinds ``meaning_accuracy`` compares the action (resp. the
  cause) parsed from the answer with the one parsed from the reference, and the overall
  ``meaning_accuracy`` uses it for them and exact match for the other kinds.
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
    """Accuracy, balanced accuracy, per-class recall and the confusion of labels (None: no
    label parsed): ``confusion[gold][predicted]`` counts, ``"unparsed"`` for None."""
    right = [p == g for p, g in zip(predicted, gold, strict=True)]
    per_class: dict[str, list[bool]] = defaultdict(list)
    for ok, g in zip(right, gold, strict=True):
        per_class[g].append(ok)
    recall = {label: sum(oks) / len(oks) for label, oks in sorted(per_class.items())}
    confusion: dict[str, Counter] = defaultdict(Counter)
    for p, g in zip(predicted, gold, strict=True):
        confusion[g]["unparsed" if p is None else p] += 1
    return {
        "accuracy": sum(right) / len(right) if right else None,
        "balanced_accuracy": sum(recall.values()) / len(recall) if recall else None,
        "per_class_recall": recall,
        "support": dict(sorted(Counter(gold).items())),
        "unparsed": sum(p is None for p in predicted),
        "count": len(right),
        "confusion": {g: dict(sorted(said.items())) for g, said in sorted(confusion.items())},
    }


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


MEANING_KINDS = {"action": 0, "why": 1}
"""Question kinds scored by meaning: the index of what :func:`parse_commentary` returns (action, cause)."""


def _same_meaning(predicted: str, answer: str, kind: str) -> bool:
    """The action (``action`` kind) or cause (``why``) parsed from both answers agree; a
    reference that states none falls back to exact match."""
    index = MEANING_KINDS[kind]
    gold = parse_commentary(answer)[index]
    if gold is None:
        return normalise_answer(predicted) == normalise_answer(answer)
    return parse_commentary(predicted)[index] == gold


def qa_metrics(predicted: Sequence[str], questions: Sequence[str], answers: Sequence[str]) -> dict[str, Any]:
    """Accuracy of answers, overall and per :func:`question_kind`: ``accuracy`` by exact match,
    ``meaning_accuracy`` by meaning for the :data:`MEANING_KINDS` (exact match for the rest)."""
    kinds = [question_kind(question) for question in questions]
    exact = [normalise_answer(p) == normalise_answer(a) for p, a in zip(predicted, answers, strict=True)]
    meaning = [
        _same_meaning(p, a, kind) if kind in MEANING_KINDS else ok
        for p, a, kind, ok in zip(predicted, answers, kinds, exact, strict=True)
    ]
    by_kind: dict[str, list[tuple[bool, bool]]] = defaultdict(list)
    for kind, pair in zip(kinds, zip(exact, meaning, strict=True), strict=True):
        by_kind[kind].append(pair)
    per_kind = {}
    for kind, pairs in sorted(by_kind.items()):
        per_kind[kind] = {"accuracy": sum(e for e, _ in pairs) / len(pairs), "count": len(pairs)}
        if kind in MEANING_KINDS:
            per_kind[kind]["meaning_accuracy"] = sum(m for _, m in pairs) / len(pairs)
    return {
        "accuracy": sum(exact) / len(exact) if exact else None,
        "meaning_accuracy": sum(meaning) / len(meaning) if meaning else None,
        "per_kind": per_kind,
        "count": len(exact),
    }
