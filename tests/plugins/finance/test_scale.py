"""The answer's scale: the rule, and the model fitted where the rule is wrong (a table that does
not state its scale, a text that names another one more often); its file; the predictor uses it."""

from __future__ import annotations

import json

import numpy as np
import pytest

from vfm.platform.errors import VfmError
from vfm.plugins.finance.answers.scale import FEATURES, FILE, ScaleModel, fit_scale_model, rule_scale, scale_features
from vfm.plugins.finance.data.records import QARecord
from vfm.plugins.finance.generation.decode import ProgramPredictor

from .test_decode import exported_model_folder


def _record(index: int, stated: str, scale: str) -> QARecord:
    """A TAT-QA-style record whose table states no scale; its text states ``stated`` once
    (in a heading) and mentions amounts in millions twice."""
    rng = np.random.default_rng(index)
    a, b = (int(v) for v in rng.integers(1_000, 90_000, size=2))
    table = [["", "2019", "2018"], [f"Item {index}", f"{a:,}", f"{b:,}"]]
    texts = [f"The amounts below are in {stated}s.", "Revenue was $1.2 million and costs $0.4 million."]
    return QARecord(
        id=f"r{index}",
        pre_text=texts,
        table=table,
        post_text=[],
        question=f"What was the change in Item {index} from 2018 to 2019?",
        answer=float(a - b),
        program=f"subtract({a}, {b})",
        scale=scale,
        answer_type="arithmetic",
        source="tatqa",
    )


def test_the_rule_reads_the_program_the_cells_and_the_document():
    table = [["( in millions )", "2019"], ["revenue", "1,200"]]
    assert rule_scale("what is the change?", table, [], program="subtract(2, 1)") == "million"
    assert rule_scale("what is the percentage change?", table, [], program="subtract(2, 1), divide(#0, 1)") == "percent"
    assert rule_scale("what is the ratio?", table, [], program="divide(2, 300)") == ""
    assert rule_scale("what is the average?", table, [], program="add(2, 3), divide(#0, const_2)") == "million"
    assert rule_scale("which year?", table, [], spans=["2019"]) == ""
    assert rule_scale("what was it?", table, [], spans=["1,200"]) == "million"


def test_the_model_learns_a_scale_the_rule_misses():
    records = [_record(i, "thousand", "thousand") for i in range(40)] + [
        _record(100 + i, "million", "million") for i in range(40)
    ]
    model, report = fit_scale_model(records)
    assert model is not None and report["kept"] and report["questions"] == 80
    for record in (_record(500, "thousand", "thousand"), _record(501, "million", "million")):
        texts = record.pre_text
        assert model.predict(record.question, record.table, texts, program=record.program) == record.scale
    missed = _record(502, "thousand", "thousand")
    assert rule_scale(missed.question, missed.table, missed.pre_text, program=missed.program) == "million"


def test_too_few_tatqa_questions_fit_no_model():
    model, report = fit_scale_model([_record(i, "thousand", "thousand") for i in range(10)])
    assert model is None and "fewer than" in report["why"]


def test_the_file_round_trips_and_a_damaged_one_is_refused(tmp_path):
    model, _ = fit_scale_model(
        [_record(i, "thousand", "thousand") for i in range(30)]
        + [_record(100 + i, "million", "million") for i in range(30)]
    )
    path = model.save(tmp_path / FILE)
    loaded = ScaleModel.load(path)
    record = _record(7, "million", "million")
    assert loaded.predict(record.question, record.table, record.pre_text, program=record.program) == "million"
    assert scale_features(record.question, record.table, record.pre_text, program=record.program).shape == (
        len(FEATURES),
    )
    data = json.loads(path.read_text())
    data["models"]["million"]["weights"] = [0.0]
    path.write_text(json.dumps(data))
    with pytest.raises(VfmError, match="do not fit its features"):
        ScaleModel.load(path)
    path.write_text("[]")
    with pytest.raises(VfmError, match="another version"):
        ScaleModel.load(path)


@pytest.mark.slow
def test_the_predictor_answers_in_the_folder_models_scale(tmp_path):
    import shutil

    folder = tmp_path / "model"
    shutil.copytree(exported_model_folder(), folder)
    record = _record(9, "thousand", "thousand")
    by_rule = ProgramPredictor(folder).predict_record(record)
    assert by_rule.scale == rule_scale(record.question, record.table, record.pre_text, program=by_rule.program)
    model, _ = fit_scale_model([_record(i, "thousand", "thousand") for i in range(60)])
    model.save(folder / FILE)
    assert ProgramPredictor(folder).predict_record(record).scale == "thousand"
