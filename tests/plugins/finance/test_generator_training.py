"""The training entry point's pieces: inputs with gold evidence, batching, data splits, settings."""

from __future__ import annotations

import json

import numpy as np
import pytest

from vfm.platform.errors import VfmError
from vfm.plugins.finance.data.data_splits import hash_percent, selection_split, split_tatqa
from vfm.plugins.finance.data.synthetic import generate
from vfm.plugins.finance.generation.generator_training import (
    LengthBuckets,
    TrainingSettings,
    train_generator,
    training_units,
)

from .conftest import DATA_DIR, finqa_item, needs_data


def test_training_units_always_hold_the_gold_evidence():
    record = generate(1, seed=41)[0]
    ranked = list(reversed(list(record.evidence())))
    units = training_units(record, ranked, 3)
    assert set(record.gold_evidence) <= set(units) and len(units) == max(3, len(record.gold_evidence))
    assert units == [ident for ident in ranked if ident in units]
    shuffled = training_units(record, ranked, 3, np.random.default_rng(0))
    assert set(record.gold_evidence) <= set(shuffled) and len(shuffled) == len(units)


def test_length_buckets_batch_every_example_once_by_length():
    lengths = np.random.default_rng(0).integers(10, 200, size=103)
    sampler = LengthBuckets(lengths, batch_size=8, seed=1, pool=4)
    batches = list(sampler)
    assert sorted(i for batch in batches for i in batch) == list(range(103))
    assert len(batches) == len(sampler)
    assert np.mean([np.ptp(lengths[b]) for b in batches]) < np.ptp(lengths) / 2


def test_hashed_splits_are_stable_and_by_document():
    assert hash_percent("V/2008/page_17.pdf") == hash_percent("V/2008/page_17.pdf")
    records = generate(60, seed=42)
    fit, select = selection_split(records)
    assert len(fit) + len(select) == 60 and 0 < len(select) < 30
    assert selection_split(records) == (fit, select)


@needs_data("tatqa/tatqa_dataset_dev.json")
def test_tatqa_is_split_by_context():
    train, held_out = split_tatqa(DATA_DIR / "tatqa/tatqa_dataset_dev.json")
    tables = {json.dumps(r.table) for r in train}
    assert held_out and not any(json.dumps(r.table) in tables for r in held_out)


def test_length_buckets_order_is_a_function_of_seed_and_epoch():
    """What a resumed run relies on: the batches of epoch e are the same whatever ran before."""
    lengths = np.random.default_rng(0).integers(10, 200, size=50)
    first, second = LengthBuckets(lengths, 8, seed=3), LengthBuckets(lengths, 8, seed=3)
    first.set_epoch(0)
    list(first)
    first.set_epoch(2)
    second.set_epoch(2)
    assert list(first) == list(second)
    second.set_epoch(1)
    assert list(second) != list(first)


def test_bad_settings_are_refused_in_one_line():
    with pytest.raises(VfmError, match="batch_size"):
        TrainingSettings(batch_size=-1)
    with pytest.raises(VfmError, match="max_minutes"):
        TrainingSettings(max_minutes=0)


def test_settings_describe_the_model():
    config = TrainingSettings(d_model=64, n_heads=2).model_config(vocab_size=500)
    assert (config.vocab_size, config.d_model, config.n_heads, config.encoder) == (500, 64, 2, "scratch")
    with pytest.raises(VfmError, match="n_heads"):
        TrainingSettings(d_model=30, n_heads=4).model_config(vocab_size=500)


def _prompt(record) -> dict:
    table = "".join("|" + "|".join(row) + "|\n" for row in record.table)
    text = (
        f"Please answer the given financial question based on the context.\nContext: {' '.join(record.pre_text)}\n"
        f"{table}{' '.join(record.post_text) or '.'}\nQuestion: {record.question}\nAnswer:"
    )
    return {
        "id": record.id,
        "conversations": [{"from": "human", "value": text}, {"from": "assistant", "value": str(record.answer)}],
    }


@pytest.mark.slow
def test_weak_labels_train_on_answer_only_questions(tmp_path):
    """A data folder whose FinQA prompt file holds answer-only questions: the run finds programs
    for them, trains and selects on them, and never on the evaluation records' documents."""
    data = tmp_path / "data"
    (data / "finqa").mkdir(parents=True)
    (data / "tatqa").mkdir()
    (data / "convfinqa").mkdir()
    records = [r for r in generate(90, seed=21) if isinstance(r.answer, float)]
    train, dev, unlabelled = records[:20], records[20:26], records[26:]
    (data / "finqa/train_sample100.original.json").write_text(json.dumps([finqa_item(r) for r in train]))
    (data / "finqa/dev_sample200.original.json").write_text(json.dumps([finqa_item(r) for r in dev]))
    (data / "tatqa/tatqa_dataset_dev.json").write_text("[]")
    (data / "convfinqa/convfinqa_dev.pot_format.json").write_text("[]")
    prompts = [_prompt(r) for r in unlabelled + dev]  # the evaluation questions are in the file too
    (data / "finqa/dev_all883.pixiu_prompt.jsonl").write_text("\n".join(json.dumps(p) for p in prompts))
    settings = TrainingSettings(
        data_dir=str(data),
        weak_labels=True,
        synthetic=20,
        max_epochs=1,
        d_model=32,
        n_layers=1,
        n_heads=2,
        d_ff=64,
        max_len=128,
        parity_records=1,
        beam_size=1,
        eval_synthetic=2,
    )
    metrics = train_generator(settings, tmp_path / "out")
    weak = metrics["weak_labels"]
    assert weak["unlabelled"] == len(unlabelled)  # the evaluation documents' prompts are dropped
    assert 0.7 * len(unlabelled) <= weak["labelled"] <= len(unlabelled) and 0 < weak["selection"] < weak["labelled"]
    assert metrics["examples"]["real"] >= 3 * (len(train) + weak["labelled"] - weak["selection"]) * 0.8
    assert set(metrics["evaluation"]) == {"synthetic_test", "finqa_dev", "tatqa_held_out"}
    reranking = metrics["reranker"]  # fitted on the selection records' beams, kept only if it helps
    assert reranking["questions"] >= weak["selection"]
    assert (tmp_path / "out/reranker.json").is_file() == reranking["kept"]
    assert ("reranked" in metrics["evaluation"]["finqa_dev"]) == reranking["kept"]
    (tmp_path / "out/reranker.json").unlink(missing_ok=True)
    again = train_generator(settings, tmp_path / "out")  # a finished run resumes at its end and refits
    assert again["epochs_run"] == metrics["epochs_run"] and again["reranker"] == reranking
