"""The beam re-ranker: its features, fitting, files, and the predictor choosing with it."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from vfm.platform.errors import VfmError
from vfm.plugins.finance.data.records import QARecord
from vfm.plugins.finance.data.synthetic import generate
from vfm.plugins.finance.generation.decode import ProgramPredictor
from vfm.plugins.finance.generation.reranker import FEATURES, BeamReranker, beam_features, number_facts, running_beams
from vfm.plugins.finance.generation.reranker_training import fit_reranker
from vfm.plugins.finance.retrieval.logistic import LogisticModel

from .test_decode import exported_model_folder

TABLE = [["", "2009", "2008"], ["revenue", "$ 120", "$ 100"], ["total assets", "1,000", "900"]]
QUESTION = "what was the percentage change in revenue from 2008 to 2009?"


def _column(name: str) -> int:
    return FEATURES.index(name)


def test_features_read_the_years_and_the_order_of_a_change():
    record = QARecord("r", (), TABLE, ("revenue grew in 2009 .",), QUESTION, 0.2, "", ())
    facts = number_facts(record.evidence(), {"table_1": 0.9, "table_2": 0.1})
    assert facts["120"] == (frozenset({"2009"}), 0.9) and facts["900"] == (frozenset({"2008"}), 0.1)
    beams = list(
        running_beams(
            [
                ("subtract(120, 100), divide(#0, 100)", 0.5),  # (new - old) / old
                ("subtract(100, 120), divide(#0, 120)", 0.3),  # the wrong order
                ("subtract(120, 100), divide(#0, 120)", 0.1),  # divided by the new value
                ("table_max(no such row, none)", 0.1),
            ],
            TABLE,
        )
    )
    assert [b.rank for b in beams] == [0, 1, 2]  # the program that fails is dropped, ranks kept
    x = beam_features(QUESTION, beams, facts)
    assert x.shape == (3, len(FEATURES))
    assert x[:, _column("change_later_minus_earlier")].tolist() == [1.0, -1.0, 1.0]
    assert x[:, _column("change_divided_by_subtrahend")].tolist() == [1.0, 1.0, -1.0]
    assert x[:, _column("argument_year_in_question")].tolist() == [1.0, 1.0, 1.0]
    assert x[:, _column("argument_relevance_min")].tolist() == [0.9, 0.9, 0.9]
    share = beam_features(
        "what share of total assets is revenue?", list(running_beams([("divide(120, 1000)", 1.0)], TABLE)), facts
    )
    assert share[0, _column("share_in_unit_interval")] == 1.0 and share[0, _column("share_negative")] == 0.0


def test_beams_that_agree_on_the_answer_pool_their_votes():
    beams = list(
        running_beams(
            [
                ("add(120, 100)", 0.4),  # 220
                ("subtract(120, 100)", 0.3),  # 20
                ("add(100, 120)", 0.2),  # 220 again, the other order
                ("add(900, 100)", 0.1),
            ],
            TABLE,
        )
    )  # 1000
    x = beam_features("what is revenue in 2009 and 2008 together?", beams, {})
    shares = np.exp(x[:, _column("answer_vote_log_share")])
    assert np.allclose(shares, [0.6, 0.3, 0.6, 0.1])
    assert x[:, _column("answer_vote_count")].tolist() == [2.0, 1.0, 2.0, 1.0]


def test_the_reranker_learns_a_cue_and_round_trips(tmp_path):
    rng = np.random.default_rng(0)
    questions = []
    for _ in range(40):
        x = rng.normal(size=(5, len(FEATURES)))
        x[:, 0] = 1.0
        right = rng.integers(5)
        x[:, _column("change_later_minus_earlier")] = -1.0
        x[right, _column("change_later_minus_earlier")] = 1.0
        questions.append((x, np.arange(5) == right))
    reranker = BeamReranker().fit(questions[:30])
    assert all(bool(y[reranker.choose(x)]) for x, y in questions[30:])
    path = reranker.save(tmp_path / "reranker.json")
    loaded = BeamReranker.load(path)
    assert [loaded.choose(x) for x, _ in questions] == [reranker.choose(x) for x, _ in questions]
    data = json.loads(path.read_text())
    data["features"] = data["features"][:-1]
    path.write_text(json.dumps(data))
    with pytest.raises(VfmError, match="other features"):
        BeamReranker.load(path)
    path.write_text("{not json")
    with pytest.raises(VfmError, match="cannot read"):
        BeamReranker.load(path)
    with pytest.raises(VfmError, match="no question has both"):
        BeamReranker().fit([(x, np.ones(len(x), dtype=bool)) for x, _ in questions])
    with pytest.raises(VfmError, match="not fitted"):
        BeamReranker().choose(questions[0][0])


def test_the_predictor_answers_with_the_beam_the_reranker_scores_best(tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(exported_model_folder(), folder)
    weights = np.where(np.array(FEATURES) == "beam_rank", 10.0, 0.0)  # prefers the least probable beam
    BeamReranker(LogisticModel(weights, np.zeros(len(FEATURES)), np.ones(len(FEATURES))), beams=4).save(
        folder / "reranker.json"
    )
    reranked, plain = ProgramPredictor(folder), ProgramPredictor(folder, beam_size=4, rerank=False)
    assert reranked.beam_size == 4 and plain.reranker is None
    chose_another = 0
    for record in generate(6, seed=21):
        a, b = reranked.predict_record(record), plain.predict_record(record)
        assert a.beams == b.beams
        running = list(running_beams(b.beams, record.table))
        if running:
            assert b.program == running[0].program and a.program == running[-1].program
            assert a.answer == running[-1].answer
            chose_another += len(running) > 1
    assert chose_another


def test_fit_reranker_keeps_it_only_when_cross_validation_says_it_helps(tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(exported_model_folder(), folder)
    (folder / "reranker.json").write_text("{stale")
    records = [r for r in generate(12, seed=5) if r.program]
    report = fit_reranker(folder, records)
    assert report["questions"] == len(records) and 0.0 <= report["first_running"] <= 1.0
    assert (folder / "reranker.json").is_file() == report["kept"]  # the stale file never survives
    if report["kept"]:
        assert report["reranked_cross_validated"] > report["first_running"]
        BeamReranker.load(folder / "reranker.json")
