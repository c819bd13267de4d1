"""Decoding a generator in numpy: the ONNX export's parity with torch, grammar, the predictor on an
exported folder (no torch) and on a training run's folder (its torch generator)."""

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
from vfm.plugins.finance.data.records import QARecord
from vfm.plugins.finance.data.synthetic import generate
from vfm.plugins.finance.generation.decode import (
    OnnxBackend,
    Prediction,
    ProgramPredictor,
    beam_decode,
    document_units,
    greedy_decode,
    read_settings,
)
from vfm.plugins.finance.generation.features import OUTPUT_VOCAB, make_example
from vfm.plugins.finance.generation.generator import (
    TorchBackend,
    export_generator,
    greedy_token_parity,
    load_generator,
)
from vfm.plugins.finance.generation.generator_training import TrainingSettings, build_model_folder
from vfm.plugins.finance.language.program import parse_program, step_reference

TINY = TrainingSettings(
    d_model=32, n_layers=1, n_heads=2, d_ff=64, max_len=128, top_k=3, beam_size=3, vocab_size=2000, dropout=0.0
)
RECORDS = 8


@functools.cache
def exported_model_folder() -> Path:
    """A folder with an untrained tiny model, laid out as a training run's plus the model's ONNX export
    (which the predictor then decodes with), built once per test session (the dynamo export takes
    seconds) and shared with ``test_evaluate``, ``test_reranker`` and ``test_scale``."""
    folder = Path(tempfile.mkdtemp(prefix="vfm-finance-model-"))
    atexit.register(shutil.rmtree, folder, True)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        export_generator(build_model_folder(folder, generate(RECORDS, seed=21), TINY), folder)
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
    return [
        predictor.inputs.encode(make_example(r, predictor.retriever.rank(r)[: TINY.top_k])) for r in records
    ], predictor.inputs


@pytest.mark.slow
def test_onnx_decode_gives_the_torch_tokens(folder, encoded_inputs):
    encoded, inputs = encoded_inputs
    torch_backend, onnx_backend = TorchBackend(load_generator(folder)), OnnxBackend(folder)
    for item in encoded:
        assert (
            greedy_decode(onnx_backend, item, length=TINY.max_len, pad_id=inputs.pad_id).tokens
            == greedy_decode(torch_backend, item, length=TINY.max_len, pad_id=inputs.pad_id).tokens
        )
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
        assert (
            greedy.tokens
            == beam_decode(backend, item, length=TINY.max_len, pad_id=inputs.pad_id, beam_size=1)[0].tokens
        )


@pytest.mark.slow
def test_the_predictor_retrieves_decodes_and_executes(folder):
    record = generate(RECORDS, seed=21)[0]
    prediction = ProgramPredictor(folder).predict_record(record)
    assert isinstance(prediction, Prediction)
    assert set(prediction.evidence) <= set(record.evidence()) and len(prediction.evidence) <= TINY.top_k
    assert sorted(ident for ident, _ in prediction.ranking) == sorted(record.evidence())
    assert prediction.program is not None and len(prediction.beams) >= 1
    assert (prediction.answer is None) == (prediction.error is not None)
    plain = ProgramPredictor(folder, beam_size=1).predict(
        record.question, record.table, record.pre_text + record.post_text
    )
    assert len(plain.beams) == 1


@pytest.mark.slow
def test_the_greedy_token_parity_of_an_export_counts_equal_programs(folder):
    records = generate(3, seed=5)
    parity = greedy_token_parity(load_generator(folder), folder, folder, records)
    assert parity == {"count": 3, "equal": 3, "mismatches": []}


def test_a_run_folder_is_decoded_with_its_torch_generator(tmp_path):
    """A training run keeps its generator in torch: the predictor decodes with it, and a folder with
    neither the weights nor an ONNX export is refused in one line naming both."""
    records = generate(RECORDS, seed=21)
    build_model_folder(tmp_path, records, TINY)
    predictor = ProgramPredictor(tmp_path, beam_size=1)
    assert isinstance(predictor.backend, TorchBackend)
    assert predictor.predict_record(records[0]).program is not None
    (tmp_path / "generator.safetensors").unlink()
    with pytest.raises(VfmError, match="neither encoder.onnx .* nor generator.safetensors") as info:
        ProgramPredictor(tmp_path)
    assert "\n" not in str(info.value)


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


def test_an_ensemble_folder_is_refused_and_one_generator_still_reads(folder, tmp_path):
    """Folders written before ensembles were removed say ``members: 1`` (read as before); an ensemble is refused."""
    settings = json.loads((folder / "finance_model.json").read_text())
    (tmp_path / "finance_model.json").write_text(json.dumps(settings | {"members": 1}))
    assert read_settings(tmp_path)["max_len"] == settings["max_len"]
    (tmp_path / "finance_model.json").write_text(json.dumps(settings | {"members": 2}))
    with pytest.raises(VfmError, match="an ensemble of 2 generators"):
        read_settings(tmp_path)


def test_beam_size_must_be_positive():
    with pytest.raises(VfmError, match="beam_size"):
        beam_decode(None, None, length=8, pad_id=0, beam_size=0)  # type: ignore[arg-type]


def test_the_runtime_imports_no_torch():
    code = (
        "import sys; import vfm.plugins.finance.generation.decode, vfm.plugins.finance.evaluation.evaluate, "
        "vfm.plugins.finance.retrieval.retriever, vfm.plugins.finance.generation.features; "
        "assert 'torch' not in sys.modules, 'torch was imported'"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


@pytest.mark.slow
def test_the_exported_model_answers_without_torch(folder):
    code = (
        "import sys; from vfm.plugins.finance.generation.decode import ProgramPredictor; "
        "from vfm.plugins.finance.data.synthetic import generate; "
        "p = ProgramPredictor(sys.argv[1]).predict_record(generate(1, seed=21)[0]); "
        "assert p.program and 'torch' not in sys.modules, sorted(m for m in sys.modules if 'torch' in m)"
    )
    result = subprocess.run([sys.executable, "-c", code, str(folder)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


def test_output_vocabulary_has_what_finqa_programs_use():
    for word in ("add(", "table_average(", ")", "EOF", "none", "const_100", "const_m1", "#0"):
        assert word in OUTPUT_VOCAB
