"""The finance retriever with a pretrained sentence encoder (a real tiny BERT here), through the real CLI:
fine-tuned in the run, fused into the retriever, exported to ONNX with a parity check, served torch-free,
named on the model card; a missing packaged encoder is skipped with one warning."""

from __future__ import annotations

import json
import logging
import shutil

import pytest

from tests.conftest import run_vfm, tiny_bert_folder
from vfm.platform.errors import VfmError
from vfm.platform.models.catalog import CATALOG
from vfm.platform.models.store import packages_installed
from vfm.plugins.finance.data.synthetic import generate
from vfm.plugins.finance.generation.features import split_words
from vfm.plugins.finance.generation.generator_training import record_texts
from vfm.plugins.finance.retrieval.dense import DENSE_FEATURES
from vfm.plugins.finance.retrieval.retriever import EvidenceRetriever

from .test_plugin import TINY, _ok

pytestmark = pytest.mark.slow
DENSE = ["--set", "finetune.dense_steps=4", "--set", "finetune.dense_batch_size=2"]


@pytest.fixture(scope="module")
def dense(tmp_path_factory):
    root = tmp_path_factory.mktemp("dense")
    words = sorted({w.lower() for text in record_texts(generate(60, seed=0)) for w in split_words(text)})
    base = tiny_bert_folder(root / "bert", words, hidden=32)
    run, bundle = root / "run", root / "bundle"
    metrics = json.loads(
        _ok("finetune", "finance", "--out", str(run), *TINY, "--set", f"finetune.dense_retriever={base}", *DENSE)
    )
    _ok("export", "finance", "--run", str(run), "--out", str(bundle))
    return {"root": root, "base": base, "run": run, "bundle": bundle, "metrics": metrics}


def test_the_run_fine_tunes_the_encoder_and_fuses_it(dense):
    run = dense["run"]
    assert dense["metrics"]["dense_retriever"]["steps"] == 4
    assert (run / "dense_encoder/model.safetensors").is_file() and (
        run / "dense_training/checkpoints/last.ckpt"
    ).is_file()
    written = json.loads((run / "retriever.json").read_text())
    assert written["features"][-3:] == list(DENSE_FEATURES) and written["dense_max_length"] == 128
    base = json.loads((run / "base_model.json").read_text())
    assert base["source"]["kind"] == "fresh" and base["components"]["dense retriever"]["licence"] == "apache-2.0"


def test_the_bundle_holds_the_onnx_encoder_checked_against_torch(dense):
    bundle = dense["bundle"]
    assert (bundle / "dense_encoder.onnx").is_file() and (bundle / "dense_tokenizer.json").is_file()
    assert not (bundle / "dense_encoder").exists(), "the torch encoder stays in the run"
    sums = (bundle / "SHA256SUMS").read_text()
    assert "dense_encoder.onnx" in sums and "dense_tokenizer.json" in sums
    parity = json.loads((bundle / "parity.json").read_text())
    assert parity["passed"] and "dense_encoder.sentence_embedding" in parity["outputs"]
    check = parity["checks"]["dense_retrieval"]
    assert check["passed"] and check["count"] == 2 and check["max_probability_diff"] <= 1e-3
    card = (bundle / "MODEL_CARD.md").read_text()
    assert "The dense retriever starts from a pretrained model" in card and "apache-2.0" in card


def test_run_and_bundle_retrieve_alike_and_the_bundle_predicts(dense):
    """The torch run and the torch-free bundle score the same synthetic questions with the same recall."""
    run_scores = json.loads(_ok("evaluate", "finance", "--run", str(dense["run"]), "--set", "evaluate.limit=20"))
    bundle_scores = json.loads(_ok("evaluate", "finance", "--run", str(dense["bundle"]), "--set", "evaluate.limit=20"))
    assert run_scores["retrieval"] == pytest.approx(bundle_scores["retrieval"])
    example = sorted((dense["bundle"] / "examples").glob("*.json"))[0]
    result = json.loads(_ok("predict", str(dense["bundle"]), str(example)))[0]
    assert result["evidence"] and sum(unit["used"] for unit in result["evidence"]) >= 1


def test_a_tampered_or_missing_encoder_is_refused_in_one_line(dense, tmp_path):
    copy = tmp_path / "bundle"
    shutil.copytree(dense["bundle"], copy)
    with (copy / "dense_encoder.onnx").open("ab") as onnx:
        onnx.write(b"\0")
    result = run_vfm("predict", str(copy), str(next((copy / "examples").iterdir())))
    assert result.returncode == 2 and "dense_encoder.onnx" in result.stderr and "Traceback" not in result.stderr
    lone = tmp_path / "lone"
    lone.mkdir()
    shutil.copyfile(dense["run"] / "retriever.json", lone / "retriever.json")
    with pytest.raises(VfmError, match="neither dense_encoder.onnx nor dense_encoder/"):
        EvidenceRetriever.load(lone / "retriever.json")


@pytest.mark.skipif(packages_installed(CATALOG["all-mpnet-base-v2"]), reason="the packaged model is installed")
def test_a_packaged_encoder_that_is_not_installed_is_skipped_with_one_warning(caplog):
    from vfm.platform.registry import get_plugin

    plugin = get_plugin("finance")
    pipeline = plugin.component("pipeline")(plugin)
    config = pipeline.resolve({"finetune": {"dense_retriever": "all-mpnet-base-v2"}})
    with caplog.at_level(logging.WARNING):
        settings = pipeline._training_settings(config)
    assert settings.dense_retriever is None
    assert any(
        "vfm[models-mpnet]" in r.getMessage() and "going on without it" in r.getMessage() for r in caplog.records
    )
