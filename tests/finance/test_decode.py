"""Decoding an exported generator in numpy: parity with torch, grammar, the predictor, no torch."""

from __future__ import annotations

import atexit
import functools
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch

from vfm.platform.errors import VfmError
from vfm.plugins.finance.decode import (
    MEMBERS_DIR,
    EnsembleBackend,
    OnnxBackend,
    Prediction,
    ProgramPredictor,
    beam_decode,
    document_units,
    greedy_decode,
    read_settings,
)
from vfm.plugins.finance.features import OUTPUT_VOCAB, make_example
from vfm.plugins.finance.generator import TorchBackend, load_generator
from vfm.plugins.finance.generator_training import TrainingSettings, build_model_folder
from vfm.plugins.finance.program import parse_program, step_reference
from vfm.plugins.finance.records import QARecord
from vfm.plugins.finance.synthetic import generate

TINY = TrainingSettings(d_model=32, n_layers=1, n_heads=2, d_ff=64, max_len=128, top_k=3, beam_size=3,
                        vocab_size=2000, dropout=0.0)
RECORDS = 8


@functools.cache
def exported_model_folder() -> Path:
    """A folder with an untrained tiny model exported to ONNX, built once per test session
    (the dynamo export takes seconds) and shared with ``test_evaluate``."""
    folder = Path(tempfile.mkdtemp(prefix="vfm-finance-model-"))
    atexit.register(shutil.rmtree, folder, True)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        build_model_folder(folder, generate(RECORDS, seed=21), TINY)
    finally:
        torch.set_num_threads(threads)
    return folder


@pytest.fixture(scope="module")
def folder() -> Path:
    return exported_model_folder()


@pytest.fixture(scope="module")
def encoded_inputs(folder):
    predictor = ProgramPredictor(folder)
    records = generate(RECORDS, seed=21)[:2]
    return [predictor.inputs.encode(make_example(r, predictor.retriever.rank(r)[: TINY.top_k])) for r in records], \
        predictor.inputs


@pytest.mark.slow
def test_onnx_decode_gives_the_torch_tokens(folder, encoded_inputs):
    encoded, inputs = encoded_inputs
    torch_backend, onnx_backend = TorchBackend(load_generator(folder)), OnnxBackend(folder)
    for item in encoded:
        assert greedy_decode(onnx_backend, item, length=TINY.max_len, pad_id=inputs.pad_id).tokens == \
            greedy_decode(torch_backend, item, length=TINY.max_len, pad_id=inputs.pad_id).tokens
        onnx_beams = beam_decode(onnx_backend, item, length=TINY.max_len, pad_id=inputs.pad_id, beam_size=3)
        torch_beams = beam_decode(torch_backend, item, length=TINY.max_len, pad_id=inputs.pad_id, beam_size=3)
        assert [b.tokens for b in onnx_beams] == [b.tokens for b in torch_beams]
        assert np.allclose([b.log_prob for b in onnx_beams], [b.log_prob for b in torch_beams], atol=1e-4)


@pytest.mark.slow
def test_decoded_programs_are_well_formed(folder, encoded_inputs):
    encoded, inputs = encoded_inputs
    backend = OnnxBackend(folder)
    for item in encoded:
        beams = beam_decode(backend, item, length=TINY.max_len, pad_id=inputs.pad_id, beam_size=3)
        assert beams and [b.log_prob for b in beams] == sorted((b.log_prob for b in beams), reverse=True)
        for beam in beams:
            steps = parse_program(beam.program)
            assert beam.tokens[-1] == "EOF" and 0.0 <= beam.confidence <= 1.0
            for index, step in enumerate(steps):
                references = [step_reference(arg) for arg in step.args]
                assert all(r is None or r < index for r in references)
        greedy = greedy_decode(backend, item, length=TINY.max_len, pad_id=inputs.pad_id)
        assert greedy.tokens == beam_decode(backend, item, length=TINY.max_len, pad_id=inputs.pad_id,
                                            beam_size=1)[0].tokens


@pytest.mark.slow
def test_the_predictor_retrieves_decodes_and_executes(folder):
    record = generate(RECORDS, seed=21)[0]
    prediction = ProgramPredictor(folder).predict_record(record)
    assert isinstance(prediction, Prediction)
    assert set(prediction.evidence) <= set(record.evidence()) and len(prediction.evidence) <= TINY.top_k
    assert sorted(ident for ident, _ in prediction.ranking) == sorted(record.evidence())
    assert prediction.program is not None and len(prediction.beams) >= 1
    assert (prediction.answer is None) == (prediction.error is not None)
    plain = ProgramPredictor(folder, beam_size=1).predict(record.question, record.table,
                                                           record.pre_text + record.post_text)
    assert len(plain.beams) == 1


@pytest.mark.slow
def test_an_ensemble_averages_its_members_log_probabilities(folder, encoded_inputs, tmp_path):
    """Two generators over one tokenizer decode as one; a folder naming a member it lacks is refused."""
    second = tmp_path / "second"
    torch.set_num_threads(1)
    build_model_folder(second, generate(RECORDS, seed=21), TrainingSettings(**{**TINY.__dict__, "seed": 1}))
    assert (second / "tokenizer.json").read_text() == (folder / "tokenizer.json").read_text()
    ensemble_folder = tmp_path / "ensemble"
    shutil.copytree(folder, ensemble_folder)
    shutil.copytree(second, ensemble_folder / MEMBERS_DIR / "1")
    settings = json.loads((folder / "finance_model.json").read_text()) | {"members": 2}
    (ensemble_folder / "finance_model.json").write_text(json.dumps(settings))

    predictor = ProgramPredictor(ensemble_folder)
    assert isinstance(predictor.backend, EnsembleBackend) and len(predictor.backend.members) == 2
    encoded, inputs = encoded_inputs[0][0], encoded_inputs[1]
    ids, mask, types = encoded.padded(TINY.max_len, inputs.pad_id)
    memory, state = predictor.backend.encode(ids, mask, types)  # [1, 2, L, D], [1, 2, D]
    assert memory.shape[:2] == (1, 2) and state.shape[:2] == (1, 2)
    prev = np.zeros(1, np.int64)
    log_p, _ = predictor.backend.step(prev, state, memory, mask)
    member_logits = []
    for member in (OnnxBackend(folder), OnnxBackend(second)):
        member_memory, member_state = member.encode(ids, mask, types)
        member_logits.append(member.step(prev, member_state, member_memory, mask)[0])
    expected = np.mean([torch.log_softmax(torch.from_numpy(x).double(), -1).numpy() for x in member_logits], axis=0)
    assert np.allclose(log_p, expected, atol=1e-6)
    assert not np.allclose(member_logits[0], member_logits[1])  # two different generators
    record = generate(RECORDS, seed=21)[0]
    assert ProgramPredictor(ensemble_folder).predict_record(record).program is not None

    twin = [d.program for d in beam_decode(EnsembleBackend([OnnxBackend(folder)] * 2), encoded, length=TINY.max_len,
                                           pad_id=inputs.pad_id, beam_size=3)]
    alone = [d.program for d in beam_decode(OnnxBackend(folder), encoded, length=TINY.max_len, pad_id=inputs.pad_id,
                                            beam_size=3)]
    assert twin == alone  # a member twice is the member

    shutil.rmtree(ensemble_folder / MEMBERS_DIR)
    with pytest.raises(VfmError, match="names 2 generators, but 1 has no ONNX files"):
        ProgramPredictor(ensemble_folder)


def test_document_units_use_finqa_ids():
    table = [["", "2019", "2018"], ["revenue", "$ 1,452", "$ 1,300"]]
    units, rows = document_units(table, ["revenue grew ."])
    record = QARecord(id="x", pre_text=["revenue grew ."], table=table, post_text=[], question="?", answer=1.0)
    assert units == record.evidence()
    assert rows == {"table_0": "", "table_1": "revenue"}


def test_settings_of_other_folders_are_refused(tmp_path):
    with pytest.raises(VfmError, match="cannot read the model settings"):
        read_settings(tmp_path)
    (tmp_path / "finance_model.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(VfmError, match="not a finance program generator"):
        read_settings(tmp_path)


def test_beam_size_must_be_positive():
    with pytest.raises(VfmError, match="beam_size"):
        beam_decode(None, None, length=8, pad_id=0, beam_size=0)  # type: ignore[arg-type]


def test_the_runtime_imports_no_torch():
    code = ("import sys; import vfm.plugins.finance.decode, vfm.plugins.finance.evaluate, "
            "vfm.plugins.finance.retriever, vfm.plugins.finance.features; "
            "assert 'torch' not in sys.modules, 'torch was imported'")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


@pytest.mark.slow
def test_the_exported_model_answers_without_torch(folder):
    code = ("import sys; from vfm.plugins.finance.decode import ProgramPredictor; "
            "from vfm.plugins.finance.synthetic import generate; "
            "p = ProgramPredictor(sys.argv[1]).predict_record(generate(1, seed=21)[0]); "
            "assert p.program and 'torch' not in sys.modules, sorted(m for m in sys.modules if 'torch' in m)")
    result = subprocess.run([sys.executable, "-c", code, str(folder)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


def test_output_vocabulary_has_what_finqa_programs_use():
    for word in ("add(", "table_average(", ")", "EOF", "none", "const_100", "const_m1", "#0"):
        assert word in OUTPUT_VOCAB
