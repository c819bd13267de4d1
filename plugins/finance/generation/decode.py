"""Answering a question with a program generator: retrieve, decode, execute.

Torch-free at import: numpy, onnxruntime and ``tokenizers``. The decode loop runs over any
:class:`Backend`: the ONNX encoder + one-step decoder of a bundle (:class:`OnnxBackend`), or the
torch model of a training run (:class:`vfm.plugins.finance.generation.generator.TorchBackend`,
imported only for a folder without ONNX files; see :func:`folder_backend`), with the grammar
of :class:`ProgramGrammar` masking every step, so that each decoded program parses and
refers only to earlier steps. The positions of one number (``1452`` in a sentence and in
a row) count as one option: their probabilities are summed, as in training.

One rule is added at decoding time: a step's second argument differs from its first
(``divide(1572, 1572)``); gold FinQA, TAT-QA and ConvFinQA programs rarely repeat an argument,
while an undertrained pointer repeats one often.

A program's confidence is its probability under the model: the product of its options'
probabilities (``exp`` of the summed log-probabilities). The answer is the most probable program
that runs, or, when the model folder holds a ``reranker.json``, the program that runs which
:class:`vfm.plugins.finance.generation.reranker.BeamReranker` scores best among its beams.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from vfm.platform.errors import VfmError
from vfm.platform.fileio import read_format_json
from vfm.plugins.finance.answers.lookup import FILE as LOOKUP_FILE
from vfm.plugins.finance.answers.lookup import TableLookup
from vfm.plugins.finance.answers.scale import FILE as SCALE_FILE
from vfm.plugins.finance.answers.scale import ScaleModel, rule_scale
from vfm.plugins.finance.answers.text_answer import FILE as TEXT_FILE
from vfm.plugins.finance.answers.text_answer import TextAnswerer
from vfm.plugins.finance.data.records import QARecord, row_to_text
from vfm.plugins.finance.data.table_text import newest_year_first
from vfm.plugins.finance.generation.features import (
    END_TOKEN,
    MAX_STEPS,
    OUTPUT_VOCAB,
    POINTER_NUMBER,
    POINTER_ROW,
    VOCAB_INDEX,
    EncodedInput,
    Example,
    InputEncoder,
    ProgramGrammar,
    options_to_tokens,
)
from vfm.plugins.finance.generation.reranker import FILE as RERANKER_FILE
from vfm.plugins.finance.generation.reranker import BeamReranker, beam_features, number_facts, running_beams
from vfm.plugins.finance.language.executor import trace
from vfm.plugins.finance.language.program import parse_program, render_program
from vfm.plugins.finance.retrieval.retriever import EvidenceRetriever
from vfm.serve.numeric import log_softmax

SETTINGS_FILE = "finance_model.json"
SETTINGS_FORMAT = "vfm-finance-program-generator/1"
ENCODER_ONNX, STEP_ONNX = "encoder.onnx", "decoder_step.onnx"
"""The generator exported to ONNX (a bundle's model; :func:`generator.export_generator` writes them)."""
WEIGHTS_FILE, CONFIG_FILE = "generator.safetensors", "generator_config.json"
"""The torch generator (a training run's model; :func:`generator.save_generator` writes them)."""
MAX_OPTIONS = 4 * MAX_STEPS + 1
"""The most options decoded: every step is 4 options (``op(``, two arguments or a row and
``none``, ``)``), then ``EOF``; the grammar ends every program within this."""


class Backend(Protocol):
    """An encoder and a one-step decoder over numpy arrays (see :mod:`generator`)."""

    def encode(
        self, input_ids: np.ndarray, attention_mask: np.ndarray, token_types: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """``[B, L]`` int64 inputs -> ``(memory [B, L, D], state [B, D])``."""
        ...

    def step(
        self, prev: np.ndarray, state: np.ndarray, memory: np.ndarray, attention_mask: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """``prev [B]`` -> ``(logits [B, V + L], state [B, D])``."""
        ...


class OnnxBackend:
    """``encoder.onnx`` and ``decoder_step.onnx`` in onnxruntime (CPU)."""

    def __init__(self, folder: str | Path):
        from vfm.serve.runtime import onnx_session

        folder = Path(folder)
        self.encoder = onnx_session(folder / ENCODER_ONNX)
        self.decoder = onnx_session(folder / STEP_ONNX)

    def encode(self, input_ids, attention_mask, token_types):
        memory, state = self.encoder.run(
            ["memory", "state"], {"input_ids": input_ids, "attention_mask": attention_mask, "token_types": token_types}
        )
        return memory, state

    def step(self, prev, state, memory, attention_mask):
        logits, state = self.decoder.run(
            ["logits", "state_out"], {"prev": prev, "state": state, "memory": memory, "attention_mask": attention_mask}
        )
        return logits, state


def folder_backend(folder: str | Path) -> Backend:
    """The model of a folder: its ONNX files when it has them (a bundle), else its torch generator
    (a training run; torch is imported only then).

    Raises:
        VfmError: the folder holds neither.
    """
    folder = Path(folder)
    if (folder / ENCODER_ONNX).is_file():
        return OnnxBackend(folder)
    if (folder / WEIGHTS_FILE).is_file():
        from vfm.plugins.finance.generation.generator import TorchBackend, load_generator

        return TorchBackend(load_generator(folder))
    raise VfmError(
        f"no program generator: neither {ENCODER_ONNX} (a bundle) nor {WEIGHTS_FILE} (a training run)",
        where=str(folder),
        fix="pass the --out folder of 'vfm finetune finance', or a bundle of 'vfm export finance'",
    )


@dataclass(frozen=True)
class Decoded:
    """One decoded program.

    Attributes:
        options: the options chosen, ending with ``EOF``'s.
        tokens: the FinQA program tokens (``["divide(", "637", "const_5", ")", "EOF"]``).
        log_prob: the summed log-probability of the options.
    """

    options: tuple[int, ...]
    tokens: tuple[str, ...]
    log_prob: float

    @property
    def program(self) -> str:
        """The program string, e.g. ``divide(637, const_5)``."""
        return render_program(parse_program(list(self.tokens)))

    @property
    def confidence(self) -> float:
        """The program's probability under the model."""
        return math.exp(self.log_prob)


@dataclass
class _Beam:
    options: list[int]
    grammar: ProgramGrammar
    log_prob: float
    state: np.ndarray = field(repr=False)


def _choices(logits: np.ndarray, grammar: ProgramGrammar, encoded: EncodedInput) -> list[tuple[float, int]]:
    """``(log-probability, option)`` of every option the grammar allows, best first; the
    positions holding the same argument are merged into their best position."""
    vocab = len(OUTPUT_VOCAB)
    allowed_vocab, pointer = grammar.allowed()
    targets = encoded.numbers if pointer == POINTER_NUMBER else encoded.rows if pointer == POINTER_ROW else {}
    first = grammar.first_argument if grammar.phase == "arg2" else None
    if first is not None and first < vocab:
        allowed_vocab = allowed_vocab.copy()
        allowed_vocab[first] = False
    elif first is not None:
        repeated = encoded.numbers.get(first - vocab)
        targets = {position: text for position, text in targets.items() if text != repeated}
    positions = np.fromiter(targets, dtype=np.int64, count=len(targets))
    scores = np.concatenate([logits[:vocab][allowed_vocab], logits[vocab + positions]])
    if not len(scores):
        raise VfmError("the grammar allows no option here", where="decode", fix="report this as a bug")
    log_p = log_softmax(scores)
    vocab_options = np.flatnonzero(allowed_vocab)
    choices = [(float(lp), int(option)) for lp, option in zip(log_p[: len(vocab_options)], vocab_options, strict=True)]
    groups: dict[str, list[tuple[float, int]]] = {}
    for lp, position in zip(log_p[len(vocab_options) :], positions, strict=True):
        groups.setdefault(targets[int(position)], []).append((float(lp), vocab + int(position)))
    for members in groups.values():
        merged = float(np.logaddexp.reduce([lp for lp, _ in members]))
        choices.append((merged, max(members)[1]))
    return sorted(choices, key=lambda choice: -choice[0])


def _prepare(backend: Backend, encoded: EncodedInput, length: int, pad_id: int):
    ids, mask, types = encoded.padded(length, pad_id)
    memory, state = backend.encode(ids, mask, types)
    return memory, state, mask


def greedy_decode(backend: Backend, encoded: EncodedInput, *, length: int, pad_id: int) -> Decoded:
    """The most probable option at every step, under the grammar.

    Args:
        backend: the model.
        encoded: the input.
        length: the length inputs are padded to (the model's ``max_len``).
        pad_id: the tokenizer's padding id.
    """
    return beam_decode(backend, encoded, length=length, pad_id=pad_id, beam_size=1)[0]


def beam_decode(
    backend: Backend, encoded: EncodedInput, *, length: int, pad_id: int, beam_size: int = 5
) -> list[Decoded]:
    """Beam search under the grammar: up to ``beam_size`` programs, most probable first.

    The live beams run through the decoder as one batch.
    """
    if beam_size < 1:
        raise VfmError(f"beam_size must be at least 1, got {beam_size}", where="beam_decode", fix="pass beam_size >= 1")
    memory, state, mask = _prepare(backend, encoded, length, pad_id)
    grammar = ProgramGrammar(has_numbers=bool(encoded.numbers), has_rows=bool(encoded.rows))
    beams = [_Beam([VOCAB_INDEX["[GO]"]], grammar, 0.0, state[0])]
    finished: list[_Beam] = []
    for _ in range(MAX_OPTIONS):
        if not beams:
            break
        n = len(beams)
        logits, states = backend.step(
            np.asarray([b.options[-1] for b in beams], dtype=np.int64),
            np.stack([b.state for b in beams]),
            np.repeat(memory, n, axis=0),
            np.repeat(mask, n, axis=0),
        )
        expansions = []
        for index, beam in enumerate(beams):
            for lp, option in _choices(logits[index], beam.grammar, encoded)[:beam_size]:
                expansions.append((beam.log_prob + lp, index, option))
        expansions.sort(key=lambda e: -e[0])
        survivors = []
        for log_prob, index, option in expansions[: beam_size - len(finished)]:
            grammar = copy.deepcopy(beams[index].grammar)
            grammar.advance(option)
            beam = _Beam([*beams[index].options, option], grammar, log_prob, states[index])
            (finished if option == VOCAB_INDEX[END_TOKEN] else survivors).append(beam)
        beams = survivors
    finished.sort(key=lambda b: -b.log_prob)
    return [
        Decoded(tuple(b.options[1:]), tuple(options_to_tokens(b.options[1:], encoded)), b.log_prob)
        for b in finished[:beam_size]
    ]


@dataclass(frozen=True)
class Prediction:
    """The answer to one question.

    Attributes:
        program: the program executed (the most probable one that runs), or the most
            probable program when none runs; None when nothing was decoded or the answer
            was read from the table or is text.
        answer: the program's value (a float, or ``"yes"``/``"no"``); for a table lookup the
            cell's text, or a tuple of the cells' texts; for a text answer the sentence; None
            when no program runs.
        confidence: the program's probability under the model, or the router's probability
            that the answer is read from the table (or is text).
        evidence: the ids of the units the generator read, most relevant first (a lookup:
            the rows it read, :attr:`LookupAnswer.rows`; a text answer: its paragraph).
        ranking: ``(evidence id, retriever score)`` of every unit, best first.
        beams: ``(program, probability)`` of every decoded program, most probable first.
        error: why no program runs, when none does.
        cells: ``(row, column)`` of the table cells a lookup answer is read from; empty
            otherwise.
        kind: ``"program"`` (computed), ``"lookup"`` (read from table cells: :mod:`lookup`)
            or ``"text"`` (a sentence of the report: :mod:`text_answer`).
        scale: the answer's scale (``""``, ``thousand``, ``million``, ``billion``, ``percent``;
            :mod:`scale`), set by :meth:`ProgramPredictor.predict`.
    """

    program: str | None
    answer: float | str | tuple[str, ...] | None
    confidence: float
    evidence: tuple[str, ...]
    ranking: tuple[tuple[str, float], ...]
    beams: tuple[tuple[str, float], ...]
    error: str | None = None
    cells: tuple[tuple[int, int], ...] = ()
    scale: str = ""
    kind: str = "program"


def document_units(table: Sequence[Sequence[str]], sentences: Sequence[str]) -> tuple[dict[str, str], dict[str, str]]:
    """``(units, row names)`` of a document, with FinQA's ids (as :meth:`QARecord.evidence`)."""
    header = list(table[0]) if table else []
    units = {f"table_{i}": row_to_text(header, list(row)) for i, row in enumerate(table)}
    units.update({f"text_{i}": text for i, text in enumerate(sentences)})
    return units, {f"table_{i}": row[0] for i, row in enumerate(table) if row}


class ProgramPredictor:
    """Retrieve, decode and execute, from a model folder: a training run of
    :mod:`vfm.plugins.finance.generation.generator_training`, or a bundle of its export.

    Args:
        folder: holds ``finance_model.json``, ``tokenizer.json``, ``retriever.json`` and the
            generator: ``encoder.onnx`` and ``decoder_step.onnx`` (a bundle), or
            ``generator.safetensors`` and ``generator_config.json`` (a training run).
        backend: the model to decode with; default: the folder's (:func:`folder_backend`).
        beam_size: overrides the folder's setting, or the re-ranker's (1 is greedy decoding).
        rerank: use the folder's ``reranker.json`` when it has one.
        lookup: answer from table cells when the folder's ``lookup.json`` (:mod:`lookup`)
            says the question asks for cells, and with a sentence when its
            ``text_answer.json`` (:mod:`text_answer`) says the answer is text. Answers get
            their scale from the folder's ``scale.json`` (:mod:`scale`), or by rule without one.
    """

    def __init__(
        self,
        folder: str | Path,
        *,
        backend: Backend | None = None,
        beam_size: int | None = None,
        rerank: bool = True,
        lookup: bool = True,
    ):
        from tokenizers import Tokenizer

        folder = Path(folder)
        settings = read_settings(folder)
        reranker_path = folder / RERANKER_FILE
        self.reranker = BeamReranker.load(reranker_path) if rerank and reranker_path.is_file() else None
        lookup_path = folder / LOOKUP_FILE
        self.lookup = TableLookup.load(lookup_path) if lookup and lookup_path.is_file() else None
        self.scale_model = ScaleModel.load(folder / SCALE_FILE) if (folder / SCALE_FILE).is_file() else None
        self.text_answerer = (
            TextAnswerer.load(folder / TEXT_FILE) if lookup and (folder / TEXT_FILE).is_file() else None
        )
        self.top_k = int(settings["top_k"])
        self.beam_size = int(beam_size or (self.reranker.beams if self.reranker else settings["beam_size"]))
        self.length = int(settings["max_len"])
        self.inputs = InputEncoder(
            Tokenizer.from_file(str(folder / "tokenizer.json")), self.length, int(settings["max_question_len"])
        )
        self.retriever = EvidenceRetriever.load(folder / "retriever.json")
        self.backend = backend if backend is not None else folder_backend(folder)

    def predict(
        self,
        question: str,
        table: Sequence[Sequence[str]],
        pre_text: Sequence[str] = (),
        post_text: Sequence[str] = (),
        history: Sequence[str] = (),
    ) -> Prediction:
        """Answer ``question`` over ``table`` (rows of cells, the header first) and the
        sentences before and after it; ``history`` holds a conversation's earlier questions. Year
        columns in ascending order are read newest first, as the training tables are
        (:func:`newest_year_first`); the cells a lookup reads are given in ``table``'s own columns."""
        table, columns = newest_year_first(table)
        units, rows = document_units(table, [*pre_text, *post_text])
        asked = " ".join([*history, question])
        ranking = self.retriever.score_units(asked, units, rows, len(pre_text))
        texts = [*pre_text, *post_text]
        scale = self.scale_model.predict if self.scale_model is not None else rule_scale
        found = self.lookup.answer(question, table) if self.lookup is not None else None
        if found is not None:
            answer = found.spans[0] if len(found.spans) == 1 else found.spans
            read = tuple(f"table_{r}" for r in found.rows)
            return Prediction(
                None,
                answer,
                found.probability,
                read,
                tuple(ranking),
                (),
                cells=tuple((r, columns[c]) for r, c in found.cells),
                scale="" if found.count else scale(question, table, texts, spans=found.spans),
                kind="lookup",
            )
        said = self.text_answerer.answer(question, table, units, ranking) if self.text_answerer else None
        if said is not None:
            return Prediction(None, said.sentence, said.probability, (said.unit,), tuple(ranking), (), kind="text")
        chosen = [ident for ident, _ in ranking[: self.top_k]]
        example = Example(
            asked,
            tuple((ident, units[ident]) for ident in chosen),
            {ident: rows[ident] for ident in chosen if ident in rows},
        )
        prediction = self.predict_example(example, table, tuple(ranking), units)
        return replace(prediction, scale=scale(question, table, texts, program=prediction.program))

    def predict_record(self, record: QARecord) -> Prediction:
        """Answer a record's question over its own document."""
        return self.predict(record.question, record.table, record.pre_text, record.post_text, record.history)

    def predict_example(
        self,
        example: Example,
        table: Sequence[Sequence[str]],
        ranking: tuple[tuple[str, float], ...] = (),
        units: Mapping[str, str] | None = None,
    ) -> Prediction:
        """Decode and execute for an input already chosen (no retrieval). With a re-ranker, the
        beam that runs is chosen by it, from the document's ``units`` (default: the input's)."""
        encoded = self.inputs.encode(example)
        decoded = [
            d
            for d in beam_decode(
                self.backend, encoded, length=self.length, pad_id=self.inputs.pad_id, beam_size=self.beam_size
            )
            if _parses(d)
        ]
        beams = tuple((d.program, d.confidence) for d in decoded)
        if self.reranker is None:
            chosen = next(running_beams(beams, table), None)
        elif running := list(running_beams(beams, table)):
            facts = number_facts(dict(example.units) if units is None else units, dict(ranking))
            chosen = running[self.reranker.choose(beam_features(example.question, running, facts))]
        else:
            chosen = None
        if chosen is not None:
            return Prediction(chosen.program, chosen.answer, chosen.probability, encoded.units, ranking, beams)
        best = decoded[0] if decoded else None
        error = "no decoded program runs on this table"
        if best is not None:
            try:
                trace(best.program, table)
            except VfmError as err:
                error = str(err)
        return Prediction(
            best.program if best else None, None, best.confidence if best else 0.0, encoded.units, ranking, beams, error
        )


def _parses(decoded: Decoded) -> bool:
    """Whether a decoded program parses (the grammar ensures it, save for odd row names)."""
    try:
        _ = decoded.program  # a property that parses
    except VfmError:
        return False
    return True


def read_settings(folder: str | Path) -> dict[str, Any]:
    """The decoding settings of a model folder (``finance_model.json``).

    Raises:
        VfmError: the file is missing or not a finance program generator's, or names several
            generators (an ensemble, which this version no longer decodes).
    """
    path = Path(folder) / SETTINGS_FILE
    settings = read_format_json(
        path,
        SETTINGS_FORMAT,
        what="a finance program generator",
        written_by="'vfm finetune finance'",
    )
    if settings.get("output_vocab") != list(OUTPUT_VOCAB):
        raise VfmError(
            "the model was trained with another program vocabulary",
            where=str(path),
            fix="retrain the model with this version of vfm",
        )
    if int(settings.get("members", 1)) != 1:
        raise VfmError(
            f"the model is an ensemble of {settings['members']} generators, which this version does not decode",
            where=str(path),
            fix="retrain the model with this version of vfm",
        )
    return settings
