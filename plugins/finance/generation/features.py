"""What the program generator reads and writes, as plain numpy: shared by training, the
ONNX runtime and the demo.

**Input.** The question, then the retrieved evidence units (table rows in words and text
sentences, :meth:`QARecord.evidence`), split into words (:func:`split_words`) and
tokenised by a ``tokenizers.Tokenizer``::

    [CLS] question words [SEP] unit 1 words [SEP] unit 2 words [SEP] ...

Every token gets a type (:data:`TOKEN_TYPES`): whether it is in the question, a text
sentence or a table row, and whether it starts a number. The first token of a number word
is a *number position*: pointing at it copies the number as a program argument
(``$ 1,452`` -> ``1452``; ``5.2 %`` -> ``5.2%``, as FinQA programs write them). The first
token of a table-row unit is a *row position*: pointing at it copies the row's name, the
argument of the ``table_*`` operations.

**Output.** A program is a sequence of *options*: an index below ``len(OUTPUT_VOCAB)`` is a
word of :data:`OUTPUT_VOCAB` (``add(``, ``)``, ``const_100``, ``#0``, ``EOF``, ...); index
``len(OUTPUT_VOCAB) + p`` points at input position ``p``. :class:`ProgramGrammar` says which
options may come next, so every decoded program parses and refers only to earlier steps.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from vfm.platform.errors import VfmError
from vfm.plugins.finance.data.records import QARecord
from vfm.plugins.finance.language.numbers import finqa_str_to_num
from vfm.plugins.finance.language.program import (
    END_TOKEN,
    NO_ARGUMENT,
    OPERATIONS,
    TABLE_OPS,
    Step,
    parse_program,
    step_reference,
)

CONSTANTS = (
    "const_1",
    "const_2",
    "const_3",
    "const_4",
    "const_5",
    "const_6",
    "const_7",
    "const_8",
    "const_9",
    "const_10",
    "const_100",
    "const_1000",
    "const_10000",
    "const_100000",
    "const_1000000",
    "const_10000000",
    "const_1000000000",
    "const_m1",
)
"""FinQA's constants (its ``constant_list.txt``)."""

MAX_STEPS = 10
"""The most steps a generated program has (FinQA's longest gold programs have 5)."""

GO, CLOSE = "[GO]", ")"
OUTPUT_VOCAB: tuple[str, ...] = (
    GO,
    END_TOKEN,
    CLOSE,
    NO_ARGUMENT,
    *(f"{op}(" for op in OPERATIONS),
    *CONSTANTS,
    *(f"#{i}" for i in range(MAX_STEPS - 1)),
)
"""The decoder's own words. ``[GO]`` is only ever an input (the first step's)."""

VOCAB_INDEX = {word: index for index, word in enumerate(OUTPUT_VOCAB)}

TOKEN_TYPES = ("pad", "special", "question", "question number", "text", "text number", "row", "row number", "row start")
"""Token types; ``row start`` is the first token of a table-row unit (a row position)."""

PAD, SPECIAL, QUESTION, QUESTION_NUMBER, TEXT, TEXT_NUMBER, ROW, ROW_NUMBER, ROW_START = range(len(TOKEN_TYPES))

MATCHED = len(TOKEN_TYPES)
"""Added to a token's type when its word is also on the other side (an evidence word in the
question, a question word in the evidence): exact matching that works for words the
tokenizer does not know (``[UNK]``) and for years (which column a question means)."""

NAME_MATCHED = 2 * len(TOKEN_TYPES)
"""Added to an evidence number's type when a word the question holds describes it: a word
before it in its clause (``the revenue of 2019 is $ 1,452``; clauses end at ``;``, ``.``
and other numbers)."""

YEAR_MATCHED = 4 * len(TOKEN_TYPES)
"""Added to an evidence number's type when the year nearest to it in its clause is one the
question names (a row's column, ``$ 1,452 million in 2019`` in a sentence)."""

N_TOKEN_TYPES = 8 * len(TOKEN_TYPES)
"""Token-type ids run from 0 to ``N_TOKEN_TYPES - 1``."""

_CLAUSE_ENDS = frozenset({";", ".", "?", "!"})
_CONTEXT = 12
"""The most words looked at on each side of a number for its description and year."""

POINTER_NONE, POINTER_NUMBER, POINTER_ROW = 0, 1, 2
"""What a pointer may point at in a decoding step: nothing, numbers, or rows."""

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]")
"""The special tokens of a tokenizer trained here (:mod:`generator_training`)."""

STOPWORDS = frozenset(
    "a an the of in on at to for from by with and or as is was were are be been what which who how much many "
    "did does do that this these those it its their there than then total percent percentage change year years "
    "during between over per if ? , . ; : $ % ( ) - ' \" [ ] & / *".split()
)
"""Words too common to say what a question is about."""

_CLS_NAMES, _SEP_NAMES, _PAD_NAMES = (
    ("[CLS]", "<s>", "<|endoftext|>"),
    ("[SEP]", "</s>", "<|endoftext|>"),
    ("[PAD]", "<pad>", "<|endoftext|>"),
)

_WORD = re.compile(
    r"(?<![\w.])-?(?:\d+(?:,\d{3})+|\d+)(?:\.\d+)?%?|(?<![\w.])-?\.\d+%?|[^\W\d_]+(?:'[^\W\d_]+)?|\d+"
    r"|[^\w\s]|_"
)
_NUMBER = re.compile(r"-?(?:(?:\d+(?:,\d{3})+|\d+)(?:\.\d+)?|\.\d+)%?")
_YEAR = re.compile(r"(?:19|20)\d\d")


def split_words(text: str) -> list[str]:
    """Lower-cased words, numbers and punctuation marks: ``"Revenue was $1,452.5m in 2019."``
    -> ``["revenue", "was", "$", "1,452.5", "m", "in", "2019", "."]``.

    A number keeps its commas, decimals, a leading minus (not in ``2018-2019``) and a
    trailing ``%``.
    """
    return _WORD.findall(text.lower())


def content_words(text: str) -> list[str]:
    """Words that carry meaning, with a plural ``s`` dropped (``revenues`` -> ``revenue``)."""
    words = []
    for word in split_words(text):
        if word in STOPWORDS or (len(word) == 1 and not word.isdigit()):
            continue
        if len(word) > 3 and word.endswith("s") and not word.endswith("ss") and word.isalpha():
            word = word[:-1]
        words.append(word)
    return words


def _matchable(word: str) -> str | None:
    """The form a word is matched across question and evidence by, or None for stopwords."""
    if word in STOPWORDS or (len(word) == 1 and not word.isdigit()):
        return None
    word = word.replace(",", "")
    return word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith("ss") else word


def is_number_word(word: str) -> bool:
    """Whether a word of :func:`split_words` is a number."""
    return _NUMBER.fullmatch(word) is not None


def is_year_word(word: str) -> bool:
    """Whether a word is a year from 1900 to 2099."""
    return _YEAR.fullmatch(word) is not None


def year_before(words: Sequence[str], index: int) -> str | None:
    """The nearest year before ``words[index]`` in its clause (clauses end at ``;`` and ``.``)."""
    for back in range(index - 1, max(index - 13, -1), -1):
        if words[back] in (";", "."):
            return None
        if is_year_word(words[back]) and words[back] != words[index]:
            return words[back]
    return None


def number_argument(words: Sequence[str], index: int) -> str:
    """The program argument a number word stands for, as FinQA writes it: commas dropped,
    ``%`` kept, also when it is the next word (``5.2 %`` -> ``5.2%``), and a number in
    parentheses negative (``( 9,819 )`` -> ``-9819``) unless it repeats the number before
    it, as FinQA tables write ``-1234 ( 1234 )``."""
    word = words[index].replace(",", "")
    after = index + 1
    if not word.endswith("%") and after < len(words) and words[after] == "%":
        word += "%"
        after += 1
    bracketed = index > 0 and words[index - 1] == "(" and after < len(words) and words[after] == ")"
    repeated = (
        index > 1
        and is_number_word(words[index - 2])
        and words[index - 2].replace(",", "").lstrip("-").rstrip("%") == word.lstrip("-").rstrip("%")
    )
    if bracketed and not repeated and not word.startswith("-"):
        word = "-" + word
    return word


@dataclass(frozen=True)
class Example:
    """What the generator reads for one question.

    Attributes:
        question: the question (a conversation's earlier turns first).
        units: ``(evidence id, text)`` in the order they are read, most relevant first.
        rows: the row name of each table-row unit, by evidence id (a row with an empty name
            cannot be pointed at).
    """

    question: str
    units: tuple[tuple[str, str], ...]
    rows: Mapping[str, str] = field(default_factory=dict)


def record_question(record: QARecord) -> str:
    """The question text a record is asked with: a conversation's turns, oldest first."""
    return " ".join([*record.history, record.question])


def make_example(record: QARecord, unit_ids: Sequence[str]) -> Example:
    """The :class:`Example` of a record reading the evidence units ``unit_ids``, in that order.

    Raises:
        VfmError: an id is not a row or sentence of the record.
    """
    evidence = record.evidence()
    unknown = [ident for ident in unit_ids if ident not in evidence]
    if unknown:
        raise VfmError(
            f"evidence {', '.join(unknown)} is not in the document",
            where=f"record {record.id}",
            fix="pass ids from record.evidence()",
        )
    rows = {
        ident: record.table[int(ident.split("_")[1])][0]
        for ident in unit_ids
        if ident.startswith("table_") and record.table[int(ident.split("_")[1])]
    }
    return Example(record_question(record), tuple((ident, evidence[ident]) for ident in unit_ids), rows)


@dataclass(frozen=True)
class EncodedInput:
    """One tokenised input.

    Attributes:
        input_ids: ``[L]`` token ids.
        token_types: ``[L]`` indexes into :data:`TOKEN_TYPES`, plus :data:`MATCHED` for words
            found on the other side.
        numbers: number position -> the program argument it copies (``"1452"``).
        rows: row position -> the row name it copies.
        units: the evidence ids that fit, in input order.
    """

    input_ids: np.ndarray
    token_types: np.ndarray
    numbers: dict[int, str]
    rows: dict[int, str]
    units: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.input_ids)

    def padded(self, length: int, pad_id: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(input_ids, attention_mask, token_types)``, each ``[1, length]`` int64, padded."""
        if len(self) > length:
            raise VfmError(
                f"input of {len(self)} tokens is longer than {length}",
                where="features.padded",
                fix="encode with max_len <= the model's max_len",
            )
        ids = np.full((1, length), pad_id, dtype=np.int64)
        mask = np.zeros((1, length), dtype=np.int64)
        types = np.zeros((1, length), dtype=np.int64)
        ids[0, : len(self)], mask[0, : len(self)], types[0, : len(self)] = self.input_ids, 1, self.token_types
        return ids, mask, types

    def pointer_masks(self, length: int) -> tuple[np.ndarray, np.ndarray]:
        """``(is_number, is_row)``, each ``[length]`` bool."""
        is_number, is_row = np.zeros(length, dtype=bool), np.zeros(length, dtype=bool)
        is_number[list(self.numbers)] = True
        is_row[list(self.rows)] = True
        return is_number, is_row


class InputEncoder:
    """Turns an :class:`Example` into an :class:`EncodedInput` with a ``tokenizers.Tokenizer``.

    Args:
        tokenizer: any ``tokenizers.Tokenizer`` (one trained here, or an HF model's
            ``tokenizer.json``); words are fed to it pre-tokenised.
        max_len: the most tokens of an input; units that do not fit are cut or dropped.
        max_question_len: the most tokens of the question (its end is kept).
    """

    def __init__(self, tokenizer, max_len: int = 256, max_question_len: int = 64):
        self.tokenizer = tokenizer
        self.max_len = max_len
        self.max_question_len = max_question_len
        self.cls_id = _special_id(tokenizer, _CLS_NAMES)
        self.sep_id = _special_id(tokenizer, _SEP_NAMES)
        self.pad_id = _special_id(tokenizer, _PAD_NAMES)

    def encode(self, example: Example) -> EncodedInput:
        """Tokenise the question and as many units as fit in ``max_len``."""
        ids, types = [self.cls_id], [SPECIAL]
        numbers: dict[int, str] = {}
        rows: dict[int, str] = {}
        question_words = split_words(example.question)
        unit_words = [split_words(text) for _, text in example.units]
        asked = {_matchable(w) for w in question_words} - {None}
        evidence = {_matchable(w) for words in unit_words for w in words} - {None}
        question = self._words(question_words, QUESTION, QUESTION_NUMBER, evidence, set(), set())
        question = tuple(part[-self.max_question_len :] for part in question)
        self._append(ids, types, numbers, question)
        ids.append(self.sep_id)
        types.append(SPECIAL)
        units = []
        described = {w for w in asked if not is_number_word(w)}
        years = {w for w in question_words if is_year_word(w)}
        for (ident, _), words in zip(example.units, unit_words, strict=True):
            room = self.max_len - len(ids) - 1
            if room < 4:
                break
            is_row = ident in example.rows
            part = self._words(
                words, ROW if is_row else TEXT, ROW_NUMBER if is_row else TEXT_NUMBER, asked, described, years
            )
            part = tuple(values[:room] for values in part)
            if not len(part[0]):
                continue
            start = len(ids)
            self._append(ids, types, numbers, part)
            if is_row and example.rows[ident].strip():
                rows[start] = example.rows[ident]
                types[start] = ROW_START + (types[start] % NAME_MATCHED >= MATCHED) * MATCHED
                numbers.pop(start, None)
            ids.append(self.sep_id)
            types.append(SPECIAL)
            units.append(ident)
        return EncodedInput(
            np.asarray(ids, dtype=np.int64), np.asarray(types, dtype=np.int64), numbers, rows, tuple(units)
        )

    def _words(
        self,
        words: list[str],
        word_type: int,
        number_type: int,
        other_side: set[str],
        described: set[str],
        years: set[str],
    ) -> tuple[np.ndarray, np.ndarray, list]:
        """``(ids, types, arguments)`` of a word list; ``arguments[i]`` is the number token ``i``
        copies, or None. Words found in ``other_side`` get :data:`MATCHED` added to their type;
        numbers described by a word of ``described`` get :data:`NAME_MATCHED`, and numbers
        whose nearest year is in ``years`` get :data:`YEAR_MATCHED`."""
        if not words:
            return np.zeros(0, np.int64), np.zeros(0, np.int64), []
        encoding = self.tokenizer.encode(words, is_pretokenized=True, add_special_tokens=False)
        token_ids = np.asarray(encoding.ids, dtype=np.int64)
        types = np.full(len(token_ids), word_type, dtype=np.int64)
        arguments: list[str | None] = [None] * len(token_ids)
        previous = None
        for position, word in enumerate(encoding.word_ids):
            if word is not None and word != previous and is_number_word(words[word]):
                types[position] = number_type + _context_bits(words, word, described, years)
                arguments[position] = number_argument(words, word)
            if word is not None and _matchable(words[word]) in other_side:
                types[position] += MATCHED
            previous = word
        return token_ids, types, arguments

    @staticmethod
    def _append(ids: list[int], types: list[int], numbers: dict[int, str], part: tuple) -> None:
        """Add a part's tokens, recording the positions of its numbers."""
        token_ids, token_types, arguments = part
        for offset, argument in enumerate(arguments[: len(token_ids)]):
            if argument is not None:
                numbers[len(ids) + offset] = argument
        ids.extend(int(i) for i in token_ids)
        types.extend(int(t) for t in token_types)


def _context_bits(words: Sequence[str], index: int, described: set[str], years: set[str]) -> int:
    """:data:`NAME_MATCHED` and :data:`YEAR_MATCHED` of the number ``words[index]``."""
    if not described and not years:
        return 0
    before, after = [], []
    for step, side in ((-1, before), (1, after)):
        position = index + step
        while 0 <= position < len(words) and len(side) < _CONTEXT:
            word = words[position]
            if word in _CLAUSE_ENDS or (is_number_word(word) and not is_year_word(word)):
                break
            side.append(word)
            position += step
    bits = NAME_MATCHED if any(_matchable(w) in described for w in before) else 0
    nearest = [(distance, 0, w) for distance, w in enumerate(after) if is_year_word(w)] + [
        (distance, 1, w) for distance, w in enumerate(before) if is_year_word(w)
    ]
    if nearest and min(nearest)[2] in years:
        bits += YEAR_MATCHED
    return bits


def _special_id(tokenizer, names: Iterable[str]) -> int:
    """The id of the first of ``names`` the tokenizer knows.

    Raises:
        VfmError: it knows none of them.
    """
    for name in names:
        ident = tokenizer.token_to_id(name)
        if ident is not None:
            return int(ident)
    raise VfmError(
        f"the tokenizer has none of the special tokens {', '.join(names)}",
        where="tokenizer.json",
        fix="use a tokenizer with [CLS]/[SEP]/[PAD] (BERT) or <s>/</s>/<pad> (RoBERTa) tokens",
    )


class ProgramGrammar:
    """Which options may come next in a program, so that every decoded program parses.

    A program is steps ``op( arg arg )`` then ``EOF``. Arithmetic arguments are numbers of
    the input (pointer), constants, or ``#j`` of an earlier step that is not a ``greater``;
    a table operation takes a row (pointer) then ``none``; ``greater`` ends the program.
    ``first_argument`` is the option taken as the current step's first argument.

    Args:
        has_numbers: whether the input has number positions.
        has_rows: whether the input has row positions (else no table operations).
        max_steps: the most steps.
    """

    def __init__(self, has_numbers: bool = True, has_rows: bool = True, max_steps: int = MAX_STEPS):
        self.has_rows = has_rows
        self.has_numbers = has_numbers
        self.max_steps = min(max_steps, MAX_STEPS)
        self.steps: list[str] = []
        self.phase = "op"
        self.op = ""
        self.first_argument: int | None = None
        self.done = False

    def allowed(self) -> tuple[np.ndarray, int]:
        """``(vocab_mask [len(OUTPUT_VOCAB)] bool, pointer kind)`` of the next option."""
        mask = np.zeros(len(OUTPUT_VOCAB), dtype=bool)
        pointer = POINTER_NONE
        if self.done:
            mask[VOCAB_INDEX[END_TOKEN]] = True
        elif self.phase == "op":
            ended = bool(self.steps) and self.steps[-1] == "greater"
            if len(self.steps) < self.max_steps and not ended:
                for op in OPERATIONS:
                    mask[VOCAB_INDEX[f"{op}("]] = op not in TABLE_OPS or self.has_rows
            mask[VOCAB_INDEX[END_TOKEN]] = bool(self.steps)
        elif self.phase in ("arg1", "arg2"):
            for constant in CONSTANTS:
                mask[VOCAB_INDEX[constant]] = True
            for index, op in enumerate(self.steps):
                mask[VOCAB_INDEX[f"#{index}"]] = op != "greater"
            pointer = POINTER_NUMBER if self.has_numbers else POINTER_NONE
        elif self.phase == "row":
            pointer = POINTER_ROW
        elif self.phase == "none":
            mask[VOCAB_INDEX[NO_ARGUMENT]] = True
        else:
            mask[VOCAB_INDEX[CLOSE]] = True
        return mask, pointer

    def advance(self, option: int) -> None:
        """Take one option (a vocabulary index, or ``len(OUTPUT_VOCAB) + position``).

        Raises:
            VfmError: the option is not allowed here.
        """
        mask, pointer = self.allowed()
        is_pointer = option >= len(OUTPUT_VOCAB)
        if (is_pointer and pointer == POINTER_NONE) or (not is_pointer and not mask[option]):
            shown = "a pointer" if is_pointer else repr(OUTPUT_VOCAB[option])
            raise VfmError(
                f"{shown} cannot come after {' '.join(self.steps) or 'the start'} in phase {self.phase}",
                where="program grammar",
                fix="decode with ProgramGrammar.allowed() masks",
            )
        word = "" if is_pointer else OUTPUT_VOCAB[option]
        if word == END_TOKEN:
            self.done = True
        elif self.phase == "op":
            self.op = word[:-1]
            self.phase = "row" if self.op in TABLE_OPS else "arg1"
        elif self.phase == "arg1":
            self.first_argument = option
            self.phase = "arg2"
        elif self.phase == "row":
            self.phase = "none"
        elif self.phase in ("arg2", "none"):
            self.phase = "close"
        else:
            self.steps.append(self.op)
            self.phase = "op"


def options_to_tokens(options: Sequence[int], encoded: EncodedInput) -> list[str]:
    """The FinQA program tokens of decoded options (``["divide(", "637", "const_5", ")", "EOF"]``)."""
    tokens = []
    for option in options:
        if option < len(OUTPUT_VOCAB):
            tokens.append(OUTPUT_VOCAB[option])
        else:
            position = option - len(OUTPUT_VOCAB)
            tokens.append(encoded.numbers.get(position) or encoded.rows[position])
    return tokens


@dataclass(frozen=True)
class ProgramTargets:
    """A gold program as decoder targets (teacher forcing), ``T`` options long with ``EOF``.

    Attributes:
        inputs: ``[T]`` the option fed at each step: ``[GO]``, then the gold option before.
        vocab_targets: ``[T]`` the gold vocabulary index, or -1 where the gold is a pointer.
        pointer_targets: ``[T, L]`` bool, the positions any of which is the gold option.
        allowed_vocab: ``[T, len(OUTPUT_VOCAB)]`` bool, the grammar's vocabulary mask.
        pointer_kinds: ``[T]`` what the pointer may point at (``POINTER_*``).
        program: the program as the targets spell it (arguments as the input writes them).
    """

    inputs: np.ndarray
    vocab_targets: np.ndarray
    pointer_targets: np.ndarray
    allowed_vocab: np.ndarray
    pointer_kinds: np.ndarray
    program: list[str]


def program_targets(program: str | Sequence[Step], encoded: EncodedInput) -> ProgramTargets | None:
    """The decoder targets of a gold program, or None when an argument cannot be produced.

    A number argument is matched to the input's number positions by its text (``1452``),
    then by its value (``4.00`` = ``4``); a number that is not in the input but is a
    constant becomes the constant (``2`` -> ``const_2``, as TAT-QA averages divide by 2).
    """
    steps = parse_program(program)
    if len(steps) > MAX_STEPS:
        return None
    by_text: dict[str, list[int]] = {}
    for position, argument in encoded.numbers.items():
        by_text.setdefault(argument, []).append(position)
    by_row: dict[str, list[int]] = {}
    for position, name in encoded.rows.items():
        by_row.setdefault(" ".join(name.lower().split()), []).append(position)
    sequence: list[int | list[int]] = []
    words: list[str] = []
    for step in steps:
        sequence.append(VOCAB_INDEX[f"{step.op}("])
        words.append(f"{step.op}(")
        if step.op in TABLE_OPS:
            positions = by_row.get(" ".join(step.args[0].lower().split()))
            if not positions:
                return None
            sequence += [positions, VOCAB_INDEX[NO_ARGUMENT]]
            words += [encoded.rows[positions[0]], NO_ARGUMENT]
        else:
            arguments = [_argument_option(arg, by_text) for arg in step.args]
            if any(option is None for option, _ in arguments):
                return None
            sequence += [option for option, _ in arguments]
            words += [word for _, word in arguments]
        sequence.append(VOCAB_INDEX[CLOSE])
        words.append(CLOSE)
    sequence.append(VOCAB_INDEX[END_TOKEN])
    words.append(END_TOKEN)
    return _targets(sequence, words, encoded)


def _argument_option(arg: str, by_text: Mapping[str, list[int]]) -> tuple[int | list[int] | None, str]:
    """The option(s) of one arithmetic argument and the argument as the input writes it."""
    if step_reference(arg) is not None:
        return (VOCAB_INDEX[arg] if arg in VOCAB_INDEX else None), arg
    if arg in VOCAB_INDEX:
        return VOCAB_INDEX[arg], arg
    if arg in by_text:
        return by_text[arg], arg
    value = finqa_str_to_num(arg)
    if value is None:
        return None, arg
    for text, positions in by_text.items():
        if finqa_str_to_num(text) == value:
            return positions, text
    constant = f"const_{'m1' if value == -1 else int(value)}" if value == int(value) else ""
    return (VOCAB_INDEX[constant], constant) if constant in VOCAB_INDEX else (None, arg)


def _targets(sequence: list[int | list[int]], words: list[str], encoded: EncodedInput) -> ProgramTargets | None:
    """Teacher-forcing arrays of an option sequence, checked against the grammar."""
    steps, length = len(sequence), len(encoded)
    grammar = ProgramGrammar(has_numbers=bool(encoded.numbers), has_rows=bool(encoded.rows))
    inputs = np.zeros(steps, dtype=np.int64)
    vocab_targets = np.full(steps, -1, dtype=np.int64)
    pointer_targets = np.zeros((steps, length), dtype=bool)
    allowed_vocab = np.zeros((steps, len(OUTPUT_VOCAB)), dtype=bool)
    pointer_kinds = np.zeros(steps, dtype=np.int64)
    previous = VOCAB_INDEX[GO]
    for t, target in enumerate(sequence):
        inputs[t] = previous
        allowed_vocab[t], pointer_kinds[t] = grammar.allowed()
        if isinstance(target, list):
            pointer_targets[t, target] = True
            previous = len(OUTPUT_VOCAB) + target[0]
        else:
            vocab_targets[t] = target
            previous = target
        try:
            grammar.advance(previous)
        except VfmError:
            return None
    return ProgramTargets(inputs, vocab_targets, pointer_targets, allowed_vocab, pointer_kinds, words)
