"""The finance plugin end to end through the real CLI: discovery, fine-tune (tiny), evaluate any
FinQA/TAT-QA file, export a verified bundle (ONNX conversion + parity check), predict torch-free, bad
input, the Gradio tab on 127.0.0.1 driven by gradio_client, and domain text adaptation feeding the
generator."""

from __future__ import annotations

import json
import shutil

import pytest

from tests.conftest import run_vfm
from vfm.platform.errors import VfmError
from vfm.plugins.finance.data.synthetic import generate
from vfm.plugins.finance.language.executor import execute

from .conftest import finqa_item

pytestmark = pytest.mark.slow

TINY = [
    "--set",
    "finetune.synthetic=40",
    "--set",
    "finetune.max_epochs=1",
    "--set",
    "finetune.d_model=32",
    "--set",
    "finetune.n_layers=1",
    "--set",
    "finetune.n_heads=2",
    "--set",
    "finetune.d_ff=64",
    "--set",
    "finetune.max_len=128",
    "--set",
    "finetune.select_synthetic=4",
    "--set",
    "finetune.eval_synthetic=4",
    "--set",
    "finetune.parity_records=2",
    "--set",
    "finetune.beam_size=2",
    "--set",
    "finetune.threads=1",
    "--no-progress",
]


def _ok(*args: str) -> str:
    result = run_vfm(*args)
    assert result.returncode == 0, f"vfm {' '.join(args[:2])} failed:\n{result.stderr[-3000:]}"
    return result.stdout


@pytest.fixture(scope="module")
def finance(tmp_path_factory):
    root = tmp_path_factory.mktemp("finance")
    run, bundle = root / "run", root / "bundle"
    metrics = json.loads(_ok("finetune", "finance", "--out", str(run), *TINY))
    _ok("export", "finance", "--run", str(run), "--out", str(bundle))
    return {"root": root, "run": run, "bundle": bundle, "metrics": metrics}


def _finqa_file(path, n=3):
    records = generate(n, seed=7)
    path.write_text(json.dumps([finqa_item(r) for r in records]))
    return records


def test_registered_like_an_outside_plugin():
    listing = json.loads(_ok("plugins", "list", "--json"))
    finance = next(row for row in listing if row["name"] == "finance")
    assert finance["status"] == "ok" and finance["task"] == "table-text-qa"


def test_finetune_keeps_the_torch_generator_and_its_scores(finance):
    run = finance["run"]
    for name in ("generator.safetensors", "generator_config.json", "tokenizer.json", "retriever.json", "config.yaml"):
        assert (run / name).is_file(), name
    for name in ("encoder.onnx", "decoder_step.onnx", "parity.json"):
        assert not (run / name).exists(), f"{name}: a run is not exported"
    assert set(finance["metrics"]["evaluation"]) == {"synthetic_test"}
    assert "parity_passed" not in finance["metrics"]


def test_export_converts_the_run_to_onnx_and_checks_it_against_torch(finance):
    bundle = finance["bundle"]
    for name in ("encoder.onnx", "decoder_step.onnx", "tokenizer.json", "retriever.json", "finance_model.json"):
        assert (bundle / name).is_file(), name
    assert not (bundle / "generator.safetensors").exists()
    parity = json.loads((bundle / "parity.json").read_text())
    assert parity["passed"] and {"encoder.memory", "encoder.state", "decoder_step.logits"} <= set(parity["outputs"])
    tokens = parity["checks"]["greedy_tokens"]
    assert tokens["passed"] and tokens["equal"] == tokens["count"] == 2 and not tokens["mismatches"]
    assert not list(bundle.parent.glob(f".{bundle.name}.*")), "the staging folders are removed"


def test_export_refuses_a_folder_without_generator_weights(finance, tmp_path):
    """A bundle (or any folder without a run's weights) is not something to export: one line naming the file."""
    result = run_vfm("export", "finance", "--run", str(finance["bundle"]), "--out", str(tmp_path / "again"))
    assert result.returncode == 2 and "generator.safetensors" in result.stderr and "fix:" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "again").exists()


def test_a_run_exported_by_an_older_version_is_converted_again(finance, tmp_path):
    """Runs of older versions hold their own ONNX files and parity.json beside the weights: export
    converts the weights again, and what the old files say does not matter."""
    from vfm.platform.registry import get_plugin

    old = tmp_path / "old-run"
    shutil.copytree(finance["run"], old, ignore=shutil.ignore_patterns("checkpoints"))
    for name in ("encoder.onnx", "decoder_step.onnx", "parity.json"):
        (old / name).write_text("stale")
    plugin = get_plugin("finance")
    bundle = plugin.component("pipeline")(plugin).export(old, tmp_path / "bundle")
    assert (bundle / "encoder.onnx").read_bytes() != b"stale"
    assert json.loads((bundle / "parity.json").read_text())["passed"]


def test_finetune_checkpoints_and_keeps_its_best_epoch(finance):
    """The shared training stack: last.ckpt to resume from, best.ckpt on the selection score, and the
    trainer's summary in the run's metrics."""
    assert (finance["run"] / "checkpoints" / "last.ckpt").is_file()
    assert (finance["run"] / "checkpoints" / "best.ckpt").is_file()
    train = finance["metrics"]["train"]
    assert train["resumed_from_step"] == 0 and train["steps"] > 0 and not train["stopped_by_time"]
    assert finance["metrics"]["epochs_run"] == 1


def test_evaluate_scores_any_finqa_file_and_prints_json(finance, tmp_path):
    _finqa_file(tmp_path / "mine.json")
    scores = json.loads(_ok("evaluate", "finance", "--run", str(finance["run"]), "--data", str(tmp_path / "mine.json")))
    assert scores["count"] == 3 and scores["program"]["count"] == 3
    assert 0.0 <= scores["program"]["execution_accuracy"] <= 1.0
    assert scores["retrieval"]["recall@5"] >= scores["retrieval"]["recall@1"]


def test_evaluate_refuses_a_split_and_a_run_that_is_not_finance(finance, tmp_path):
    _finqa_file(tmp_path / "mine.json")
    result = run_vfm(
        "evaluate", "finance", "--run", str(finance["run"]), "--data", str(tmp_path / "mine.json"), "--split", "test"
    )
    assert result.returncode == 2 and "one split" in result.stderr
    result = run_vfm("evaluate", "finance", "--run", str(tmp_path))
    assert result.returncode == 2 and "not a finance run" in result.stderr and "fix:" in result.stderr


def test_predict_answers_with_a_program_whose_trace_gives_the_answer(finance):
    examples = sorted((finance["bundle"] / "examples").glob("*.json"))
    assert len(examples) == 6
    results = json.loads(_ok("predict", str(finance["bundle"]), *map(str, examples[:2])))
    for result, path in zip(results, examples):
        table = json.loads(path.read_text())["table"]
        assert result["program"] and result["evidence"] and 0.0 <= result["confidence"] <= 1.0
        if result["answer"] is not None:  # an untrained model's program may not run; then it says why
            assert execute(result["program"], table) == result["answer"]
            assert (
                result["steps"][-1]["value"] == pytest.approx(result["answer"], rel=1e-6)
                if isinstance(result["answer"], float)
                else True
            )
        else:
            assert result["no_answer_reason"]
        assert sum(unit["used"] for unit in result["evidence"]) >= 1


def test_a_question_asking_for_a_table_cell_is_answered_from_the_table(finance):
    """The run fits the table lookup (synthetic cell questions), the bundle carries it under its checksums,
    and the bundle's last example, a question whose answer is a table cell, is read from the table."""
    assert finance["metrics"]["lookup"]["kept"] and (finance["run"] / "lookup.json").is_file()
    assert "lookup.json" in (finance["bundle"] / "SHA256SUMS").read_text()
    example = sorted((finance["bundle"] / "examples").glob("*.json"))[-1]
    gold = json.loads(example.read_text())["gold"]
    result = json.loads(_ok("predict", str(finance["bundle"]), str(example)))[0]
    assert result["kind"] == "lookup" and result["program"] is None and result["steps"] == []
    assert [cell["text"] for cell in result["cells"]] == gold["answer"]
    used = {unit["id"] for unit in result["evidence"] if unit["used"]}
    assert {f"table_{cell['row']}" for cell in result["cells"]} <= used, "the rows of the cells read"
    assert len(used) == 1 + (result["cells"][0]["row"] == 0), "a year's answer also shows the row compared"


def test_tampered_bundle_is_refused(finance, tmp_path):
    copy = tmp_path / "bundle"
    shutil.copytree(finance["bundle"], copy)
    (copy / "retriever.json").write_text((copy / "retriever.json").read_text().replace("0", "1", 1))
    result = run_vfm("predict", str(copy), str(next((copy / "examples").iterdir())))
    assert result.returncode == 2 and "retriever.json" in result.stderr


def test_evaluate_verifies_a_bundle_it_is_given(finance, tmp_path):
    """--run may be a bundle: scored like the run it came from, refused once any file differs from its
    checksums, and refused under another plugin's name."""
    scores = json.loads(_ok("evaluate", "finance", "--run", str(finance["bundle"])))
    assert scores["count"] == 200
    copy = tmp_path / "bundle"
    shutil.copytree(finance["bundle"], copy)
    with (copy / "decoder_step.onnx").open("ab") as onnx:
        onnx.write(b"\0")
    result = run_vfm("evaluate", "finance", "--run", str(copy))
    assert result.returncode == 2 and "checksum mismatch for decoder_step.onnx" in result.stderr
    result = run_vfm("evaluate", "retina", "--run", str(finance["bundle"]))
    assert result.returncode == 2 and "a finance bundle, not a retina one" in result.stderr


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ({"question": " ", "table": "a,2019\nb,1"}, "question is empty"),
        ({"question": "what?", "table": ""}, "table is empty"),
        ({"question": "what?", "table": "item,2019,2018\nrevenue,1"}, "cells"),
        ({"question": "what?", "table": "item,kind\nrevenue,high"}, "number"),
        ({"question": "what?", "table": "a,2019\nb,1", "pre_text": "x" * 100_001}, "characters"),
        ({"question": "what?", "table": [["a", "2019"], "b"]}, "rows of cells"),
        ({"question": "what?", "table": [["a", "2019"], ["b", [1, 2]]]}, "row 1, column 1 is a list"),
        ({"question": "what?", "table": [["a", "2019"], ["b", {"v": 1}]]}, "row 1, column 1 is a dict"),
        ({"question": "what?", "table": "a,2019\nb,1", "pre_text": ["fine", {"x": 1}]}, "pre_text holds a dict"),
        (42, "cannot read"),
    ],
)
def test_bad_input_gets_one_clear_line(finance, source, message):
    from vfm.serve.runtime import open_predictor

    predictor = open_predictor(finance["bundle"])
    with pytest.raises(VfmError, match=message) as info:
        predictor.predict(source)
    assert "\n" not in str(info.value)


def test_bad_files_get_one_clear_line(finance, tmp_path):
    from vfm.serve.runtime import open_predictor

    predictor = open_predictor(finance["bundle"])
    (tmp_path / "bad.json").write_text("{not json")
    (tmp_path / "no-question.json").write_text(json.dumps({"table": [["a", "2019"], ["b", "1"]]}))
    _finqa_file(tmp_path / "many.json")
    for path, message in (
        (tmp_path / "missing.json", "not found"),
        (tmp_path / "bad.json", "not a JSON"),
        (tmp_path / "no-question.json", "has no question"),
        (tmp_path / "many.json", "vfm evaluate"),
    ):
        with pytest.raises(VfmError, match=message):
            predictor.predict(path)


def test_a_huge_question_context_is_refused_quickly(finance):
    from vfm.serve.runtime import open_predictor

    predictor = open_predictor(finance["bundle"])
    table = (
        "item,"
        + ",".join(str(2000 + i) for i in range(20))
        + "\n"
        + "\n".join(f"row {r}," + ",".join(str(r * i) for i in range(20)) for r in range(2000))
    )
    with pytest.raises(VfmError, match="limit"):
        predictor.predict({"question": "what is the total?", "table": table})


def test_demo_tab_answers_and_keeps_serving_after_bad_input(finance):
    from gradio_client import Client

    from vfm.serve.app import build_app, free_port, launch
    from vfm.serve.runtime import open_predictor

    predictor = open_predictor(finance["bundle"])
    app = build_app([predictor])
    port = free_port()
    launch(app, [predictor], port=port, block=False)
    try:
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        inputs = predictor.smoke_inputs()
        summary, trace, evidence = client.predict(*inputs, api_name="/finance_predict")
        assert summary.startswith("###")
        assert any(item.get("class_or_confidence") == "used" for item in evidence)
        with pytest.raises(Exception, match="table is empty"):
            client.predict(inputs[0], "", inputs[2], inputs[3], api_name="/finance_predict")
        with pytest.raises(Exception, match="question is empty"):
            client.predict(*inputs[:3], "", api_name="/finance_predict")
        example = client.predict(predictor.bundle.examples()[0].name, api_name="/finance_example")
        assert example[3] == inputs[3]
        cell_question = client.predict(predictor.bundle.examples()[-1].name, api_name="/finance_example")
        summary_cells, trace_cells, _ = client.predict(*cell_question, api_name="/finance_predict")
        assert "Read from the table" in summary_cells and not trace_cells["data"]
        assert client.predict(*inputs, api_name="/finance_predict")[0] == summary
    finally:
        app.close()


def test_validate_runs_every_step():
    from vfm.platform.registry import get_plugin
    from vfm.platform.validate import validate_plugin

    report = validate_plugin(get_plugin("finance"))
    assert report["passed"], report["steps"]
    assert [s["step"] for s in report["steps"]] == ["schema", "imports", "forward", "export_parity", "demo"]


def test_domain_adapted_encoder_feeds_the_generator(tmp_path):
    adapted = tmp_path / "adapt"
    metrics = json.loads(
        _ok(
            "pretrain",
            "finance",
            "--out",
            str(adapted),
            "--set",
            "pretrain.max_steps=3",
            "--set",
            "pretrain.vocab_size=600",
            "--set",
            "pretrain.warmup_steps=1",
            "--set",
            "pretrain.batch_size=8",
            "--set",
            "pretrain.block_size=64",
            "--no-progress",
        )
    )
    assert metrics["perplexity"]["domain"]["after"] > 0
    assert (adapted / "model" / "tokenizer.json").is_file()
    run = tmp_path / "run"
    result = json.loads(_ok("finetune", "finance", "--out", str(run), "--pretrained", str(adapted / "model"), *TINY))
    assert result["settings"]["encoder"] == str(adapted / "model")
    record = json.loads((adapted / "model" / "vfm_model.json").read_text())
    assert record["source"]["kind"] == "adapted" and record["source"]["base"]["reference"] == "fresh:bert-tiny"
    assert json.loads(_ok("models", "verify", str(adapted / "model")))["verified"]
    bundle = tmp_path / "bundle"
    _ok("export", "finance", "--run", str(run), "--out", str(bundle))
    assert json.loads((bundle / "parity.json").read_text())["passed"]
    base = json.loads((bundle / "base_model.json").read_text())
    assert base["reference"] == str(adapted / "model") and "model.safetensors" in base["weights_sha256"]
    card = (bundle / "MODEL_CARD.md").read_text()
    assert "## Base model" in card and "domain-adapted by `vfm pretrain` from `fresh:bert-tiny`" in card
