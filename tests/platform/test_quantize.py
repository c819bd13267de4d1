"""INT8 bundles (``vfm export --quantize int8``): written only when the plugin's metric gate holds,
loadable and predicting, and refused when their record shows a failed gate."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from conftest import forge_file

from vfm.platform.cli import main
from vfm.platform.errors import VfmError
from vfm.platform.quantize import FILE, quantize_bundle
from vfm.platform.registry import get_plugin
from vfm.serve.runtime import open_predictor

pytestmark = pytest.mark.slow


def _pipeline(name: str):
    plugin = get_plugin(name)
    return plugin.component("pipeline")(plugin)


def test_an_int8_bundle_within_the_gate_is_written_smaller_and_predicts(smoke_bundles, tmp_path, capfd):
    fp32 = smoke_bundles["finance"]
    record = quantize_bundle(_pipeline("finance"), fp32, tmp_path / "int8")
    assert record["passed"] and record["gate"] == {"metrics": ["answers.execution_accuracy"], "max_drop": 0.01}
    assert record["data"] is None  # the plugin's own held-out set
    assert record["size_mb"]["int8"] < record["size_mb"]["fp32"]
    assert json.loads((tmp_path / "int8" / FILE).read_text()) == record
    example = sorted((fp32 / "examples").iterdir())[0]
    answer = open_predictor(tmp_path / "int8").predict(example)
    assert answer["question"] and answer["kind"] in ("program", "lookup", "text")


def test_a_metric_that_drops_past_the_gate_writes_nothing(smoke_bundles, tmp_path):
    pipeline = _pipeline("finance")
    fp32 = smoke_bundles["finance"]

    def evaluate(bundle, *args, **kwargs):  # the int8 candidate scores 2 points lower
        return {"answers": {"execution_accuracy": 0.50 if bundle == fp32 else 0.48}}

    pipeline.evaluate = evaluate
    with pytest.raises(VfmError, match=r"not written: answers.execution_accuracy fell from 0.5000 to 0.4800"):
        quantize_bundle(pipeline, fp32, tmp_path / "int8")
    assert not (tmp_path / "int8").exists() and list(tmp_path.iterdir()) == []  # no staging left either


def test_a_bundle_recording_a_failed_gate_is_refused(smoke_bundles, tmp_path):
    bundle = tmp_path / "int8"
    quantize_bundle(_pipeline("finance"), smoke_bundles["finance"], bundle)
    record = json.loads((bundle / FILE).read_text())
    forge_file(bundle, FILE, json.dumps(record | {"passed": False}))
    with pytest.raises(VfmError, match="does not show a passed metric gate"):
        open_predictor(bundle)


def test_retina_exports_an_int8_bundle_gated_on_auroc_of_its_onnx_model(retina_run, tmp_path, capfd):
    out = tmp_path / "bundle"
    assert (
        main(["export", "retina", "--run", str(retina_run["finetune"]), "--out", str(out), "--quantize", "int8"]) == 0
    )
    assert "int8 bundle written" in capfd.readouterr().out
    record = json.loads((tmp_path / "bundle-int8" / FILE).read_text())
    assert record["passed"] and set(record["fp32"]) == {"auroc_macro_ovr"}
    assert record["fp32"]["auroc_macro_ovr"] == pytest.approx(
        _pipeline("retina").evaluate(retina_run["finetune"])["auroc_macro_ovr"], abs=1e-4
    )  # the fp32 bundle scores as its torch run does


def test_a_plugin_without_a_gate_is_refused_before_any_work(tmp_path):
    manifest = get_plugin("finance").manifest
    ungated = manifest.model_copy(update={"export": manifest.export.model_copy(update={"quantize_gate": None})})
    pipeline = SimpleNamespace(plugin=SimpleNamespace(name="finance", manifest=ungated))
    with pytest.raises(VfmError, match="declares no quantization gate"):
        quantize_bundle(pipeline, tmp_path / "no-bundle", tmp_path / "int8")
