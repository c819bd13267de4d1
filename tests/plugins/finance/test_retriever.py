"""The evidence retriever: features, fitting, ranking, saving, and real-data recall."""

from __future__ import annotations

import json

import numpy as np
import pytest

from vfm.platform.errors import VfmError
from vfm.plugins.finance.data.data_splits import load_real_data
from vfm.plugins.finance.data.records import QARecord
from vfm.plugins.finance.data.synthetic import generate
from vfm.plugins.finance.generation.features import content_words
from vfm.plugins.finance.retrieval.retriever import FEATURES, EvidenceRetriever, retrieval_recall, unit_features

from .conftest import DATA_DIR, needs_data


@pytest.fixture(scope="module")
def retriever() -> EvidenceRetriever:
    return EvidenceRetriever().fit(generate(40, seed=1))


def test_gold_rows_rank_first_on_synthetic_records(retriever):
    records = [r for r in generate(40, seed=2) if all(g.startswith("table_") for g in r.gold_evidence)]
    assert len(records) > 10
    for record in records:
        ranked = retriever.rank(record)
        assert set(ranked[: len(record.gold_evidence)]) == set(record.gold_evidence), record.question


def test_recall_at_3_is_complete_on_synthetic_records(retriever):
    scores = retrieval_recall(retriever.rank, generate(40, seed=2))
    assert scores["recall@3"] == 1.0
    assert scores["recall@1"] <= scores["recall@3"] <= scores["recall@5"]
    assert scores["count"] == 40


def test_rank_returns_every_unit_once(retriever):
    record = generate(1, seed=3)[0]
    assert sorted(retriever.rank(record)) == sorted(record.evidence())


def test_row_name_and_year_features():
    units = {
        "table_0": "year the 2019 of 2019 is 2019 ;",
        "table_1": "year the revenue of 2019 is $ 1,452 ;",
        "text_0": "the company was founded long ago .",
    }
    features = unit_features("what was revenue in 2019 ?", units, {"table_0": "year", "table_1": "revenue"})
    assert features.shape == (3, len(FEATURES))
    column = {name: features[:, i] for i, name in enumerate(FEATURES)}
    assert column["row_name_in_question"].tolist() == [0.0, 1.0, 0.0]
    assert column["is_header"].tolist() == [1.0, 0.0, 0.0]
    assert column["question_year_in_unit"][1] == 1.0 and column["question_year_in_unit"][2] == 0.0
    assert np.argmax(column["bm25"]) == 1


def test_report_layout_features():
    units = {
        "table_0": "the goodwill of 2019 is 64 ;",
        "table_1": "the total of 2019 is $ 549 ;",
        "text_0": "the purchase price was allocated as follows :",
        "text_1": "in november we bought 3 plants .",
    }
    rows = {"table_0": "goodwill", "table_1": "total"}
    column = dict(
        zip(FEATURES, unit_features("what portion of the price is goodwill in november ?", units, rows).T, strict=True)
    )
    assert column["row_is_total"].tolist() == [0.0, 1.0, 0.0, 0.0]
    assert column["total_row_for_share_question"].tolist() == [0.0, 1.0, 0.0, 0.0]
    assert column["total_row_for_total_question"].tolist() == [0.0, 0.0, 0.0, 0.0]
    assert column["row_for_share_question"].tolist() == [1.0, 1.0, 0.0, 0.0]
    assert column["table_introduction"].tolist() == [0.0, 0.0, 1.0, 0.0]
    assert column["question_month_in_unit"].tolist() == [0.0, 0.0, 0.0, 1.0]
    plain = dict(zip(FEATURES, unit_features("what was goodwill ?", units, rows).T, strict=True))
    assert plain["total_row_for_share_question"].sum() == 0.0 and plain["question_month_in_unit"].sum() == 0.0


def test_content_words_drop_stopwords_and_plurals():
    assert content_words("What were the total revenues in 2019 ?") == ["revenue", "2019"]


def test_save_and_load_rank_the_same(retriever, tmp_path):
    path = retriever.save(tmp_path / "retriever.json")
    loaded = EvidenceRetriever.load(path)
    record = generate(1, seed=4)[0]
    assert loaded.rank(record) == retriever.rank(record)


def test_unfitted_and_foreign_files_are_refused(tmp_path):
    record = generate(1, seed=4)[0]
    with pytest.raises(VfmError, match="not fitted"):
        EvidenceRetriever().rank(record)
    (tmp_path / "other.json").write_text(json.dumps({"format": "something else"}))
    with pytest.raises(VfmError, match="another version"):
        EvidenceRetriever.load(tmp_path / "other.json")
    with pytest.raises(VfmError, match="cannot read"):
        EvidenceRetriever.load(tmp_path / "missing.json")


def test_fit_needs_gold_evidence():
    bare = QARecord(
        id="x", pre_text=["a ."], table=[["", "2019"], ["revenue", "1"]], post_text=[], question="what ?", answer=1.0
    )
    with pytest.raises(VfmError, match="gold evidence"):
        EvidenceRetriever().fit([bare])


@pytest.mark.slow
@needs_data(
    "finqa/train_sample100.original.json",
    "finqa/dev_sample200.original.json",
    "tatqa/tatqa_dataset_dev.json",
    "convfinqa/convfinqa_dev.pot_format.json",
)
def test_real_data_recall_stays_above_the_measured_floor():
    real = load_real_data(DATA_DIR)
    retriever = EvidenceRetriever().fit(real.train)
    scores = retrieval_recall(retriever.rank, real.finqa_dev)
    assert scores["recall@3"] > 0.7
