"""A small sample of everyday English, generated from templates: a test helper, not part of vfm.

No general-English corpus ships with vfm and none can be downloaded here. Real runs should pass
a path to one (Wikipedia, C4 or books text as ``.txt`` or ``.jsonl``). This generator gives
the tests *something* general to mix in and to measure forgetting on; its sentences are simple
and repetitive, so perplexities on it say little about real English.
"""

from __future__ import annotations

import random

from vfm.pretrain.text_corpus import Document

SOURCE = "embedded-general-sample"
"""The ``Document.source`` of every generated document, so reports can flag it."""

_PEOPLE = [
    "my sister",
    "the old man",
    "a young teacher",
    "our neighbour",
    "the children",
    "a tired doctor",
    "the farmer",
    "my best friend",
    "the new student",
    "a quiet woman",
    "the baker",
    "his grandmother",
]
_ACTIONS = [
    "walked to",
    "looked at",
    "painted",
    "cleaned",
    "visited",
    "talked about",
    "read about",
    "found",
    "remembered",
    "photographed",
    "described",
    "built a model of",
]
_THINGS = [
    "the river",
    "a small garden",
    "the library",
    "an old bridge",
    "the kitchen",
    "a red bicycle",
    "the mountain village",
    "a wooden boat",
    "the city park",
    "a quiet beach",
    "the school hall",
    "a bird",
]
_TIMES = [
    "in the morning",
    "after lunch",
    "on a rainy afternoon",
    "late at night",
    "last summer",
    "during the holidays",
    "before breakfast",
    "on sunday",
    "in the spring",
    "at sunset",
]
_FEELINGS = ["happy", "surprised", "calm", "curious", "sleepy", "proud", "hungry", "cheerful"]
_WEATHER = ["sunny", "cold", "windy", "warm", "cloudy", "foggy", "bright", "wet"]
_TEMPLATES = [
    "{p} {a} {t} {w}.",
    "{w_cap}, {p} {a} {t}.",
    "It was {weather} and {p} felt {f}.",
    "Everyone said that {p} was {f} after seeing {t}.",
    "{p_cap} often talks about {t} with friends.",
    "The weather was {weather}, so {p} stayed near {t}.",
    "When {p} saw {t}, everyone felt {f}.",
    "Later {p} {a} {t} again and went home.",
]


def general_english_sample(n_documents: int = 200, sentences_per_document: int = 6, seed: int = 0) -> list[Document]:
    """``n_documents`` short template-generated English paragraphs (deterministic in ``seed``)."""
    rng = random.Random(seed)
    docs = []
    for index in range(n_documents):
        sentences = []
        for _ in range(sentences_per_document):
            p, w = rng.choice(_PEOPLE), rng.choice(_TIMES)
            sentence = rng.choice(_TEMPLATES).format(
                p=p,
                p_cap=p[0].upper() + p[1:],
                a=rng.choice(_ACTIONS),
                t=rng.choice(_THINGS),
                w=w,
                w_cap=w[0].upper() + w[1:],
                f=rng.choice(_FEELINGS),
                weather=rng.choice(_WEATHER),
            )
            sentences.append(sentence[0].upper() + sentence[1:])
        docs.append(Document(f"general-{seed}-{index}", " ".join(sentences), SOURCE))
    return docs
