"""The commentary model's text side: a byte-level BPE tokenizer trained on driving text, with the
four special tokens the model's sequence layout needs.

One training sequence of :mod:`vfm.plugins.driving.model` is::

    [visual prefix] <bos> question tokens <sep> target tokens <eos> <pad> ...

with an empty question for commentary. Digits are split one per token, so that speeds and
distances the tokenizer never saw ("37 m") still encode without unknown tokens. Torch-free
(``tokenizers`` only): the runtime decodes with the same ``tokenizer.json``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from vfm.platform.errors import VfmError
from vfm.platform.fileio import atomic_write_text
from vfm.plugins.driving.records import DrivingSample

SPECIAL_TOKENS = {"pad": "<pad>", "bos": "<bos>", "eos": "<eos>", "sep": "<sep>"}
"""Role -> token text. :meth:`DrivingTokenizer.extend` adds the missing ones to a
language model's own tokenizer."""

TOKENIZER_FILE = "tokenizer.json"


class DrivingTokenizer:
    """A ``tokenizers.Tokenizer`` with the ids of :data:`SPECIAL_TOKENS`.

    Args:
        tokenizer: holds every token of :data:`SPECIAL_TOKENS`.

    Raises:
        VfmError: a special token is missing.
    """

    def __init__(self, tokenizer: Tokenizer):
        missing = [text for text in SPECIAL_TOKENS.values() if tokenizer.token_to_id(text) is None]
        if missing:
            raise VfmError(
                f"the tokenizer lacks the special token(s) {missing}",
                where="DrivingTokenizer",
                fix="train it with train_tokenizer, or add them with DrivingTokenizer.extend",
            )
        self.tokenizer = tokenizer
        ids = {role: tokenizer.token_to_id(text) for role, text in SPECIAL_TOKENS.items()}
        self.pad_id, self.bos_id, self.eos_id, self.sep_id = ids["pad"], ids["bos"], ids["eos"], ids["sep"]

    @property
    def vocab_size(self) -> int:
        """Number of token ids, added tokens included (the decoder's embedding rows)."""
        return self.tokenizer.get_vocab_size(with_added_tokens=True)

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text``, no special tokens."""
        return self.tokenizer.encode(text, add_special_tokens=False).ids

    def decode(self, ids: Iterable[int]) -> str:
        """Text of ``ids``, special tokens dropped."""
        return self.tokenizer.decode(list(ids), skip_special_tokens=True).strip()

    def prompt(self, question: str | None = None) -> list[int]:
        """``<bos> question <sep>``; ``<bos> <sep>`` for commentary (no question)."""
        return [self.bos_id, *(self.encode(question) if question else []), self.sep_id]

    def target(self, text: str) -> list[int]:
        """``text <eos>``: what the model learns to generate after the prompt."""
        return [*self.encode(text), self.eos_id]

    def save(self, path: str | Path) -> Path:
        """Write ``tokenizer.json`` (atomically) to ``path``."""
        return atomic_write_text(path, self.tokenizer.to_str())

    @classmethod
    def load(cls, path: str | Path) -> DrivingTokenizer:
        """Read a ``tokenizer.json`` written by :meth:`save`."""
        path = Path(path)
        if not path.is_file():
            raise VfmError(
                "tokenizer file not found", where=str(path), fix="pass the tokenizer.json of a driving model folder"
            )
        try:
            tokenizer = Tokenizer.from_file(str(path))
        except Exception as err:  # tokenizers raises a bare Exception on malformed JSON
            raise VfmError(
                f"not a tokenizers file: {str(err).splitlines()[0]}",
                where=str(path),
                fix="pass the tokenizer.json of a driving model folder",
            ) from None
        return cls(tokenizer)

    @classmethod
    def extend(cls, tokenizer: Tokenizer) -> DrivingTokenizer:
        """A copy of a language model's own tokenizer (``hf_tokenizer.backend_tokenizer``) with the
        missing special tokens appended; the model's embedding table must then grow to
        :attr:`vocab_size`."""
        copy = Tokenizer.from_str(tokenizer.to_str())
        copy.add_special_tokens([text for text in SPECIAL_TOKENS.values() if copy.token_to_id(text) is None])
        return cls(copy)


def train_tokenizer(texts: Iterable[str], vocab_size: int = 2000, min_frequency: int = 2) -> DrivingTokenizer:
    """A byte-level BPE tokenizer of at most ``vocab_size`` tokens trained on ``texts``.

    The special tokens take ids 0-3 (pad, bos, eos, sep); the 256 byte tokens follow, so any
    text encodes.
    """
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ]
    )
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=list(SPECIAL_TOKENS.values()),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    return DrivingTokenizer(tokenizer)


def sample_texts(samples: Sequence[DrivingSample]) -> list[str]:
    """Every commentary, question and answer of ``samples`` (the tokenizer's training text)."""
    texts = []
    for sample in samples:
        texts.append(sample.commentary)
        for pair in sample.qa:
            texts += [pair.question, pair.answer]
    return [text for text in texts if text]
