"""The driving plugin through the real CLI on tiny settings: simulator data (cached), MAE on
frames, commentary training from the pretrained encoder with held-out scores, `vfm evaluate
driving --data DIR` on a dataset in the generic format, and `vfm export`: ONNX with parity in a
verified bundle with example episodes."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.conftest import run_vfm
from vfm.platform.bundle import load_bundle
from vfm.platform.errors import VfmError
from vfm.platform.registry import get_plugin
from vfm.plugins.driving.decode import CommentaryRuntime
from vfm.plugins.driving.pipeline import DrivingPipeline, distinct_frames, model_folder
from vfm.plugins.driving.simulate import run_episode, write_dataset

pytestmark = pytest.mark.slow


def _smoke_sets() -> list[str]:
    """``--set`` flags of the pipeline's own smoke config, so tests and `validate` share one recipe."""
    config = DrivingPipeline(get_plugin("driving")).smoke_config()
    flags = []
    for section, values in config.items():
        for key, value in values.items():
            flags += ["--set", f"{section}.{key}={json.dumps(value)}"]
    return [*flags, "--no-progress"]


def _ok(*args: str) -> dict:
    result = run_vfm(*args)
    assert result.returncode == 0, f"vfm {' '.join(args[:2])} failed:\n{result.stderr[-3000:]}"
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def driving(tmp_path_factory):
    root = tmp_path_factory.mktemp("driving")
    sets = _smoke_sets()
    pretrain = _ok("pretrain", "driving", "--out", str(root / "pretrain"), *sets)
    finetune = _ok(
        "finetune",
        "driving",
        "--out",
        str(root / "finetune"),
        "--pretrained",
        str(root / "pretrain" / "encoder.safetensors"),
        *sets,
    )
    return {"root": root, "pretrain": pretrain, "finetune": finetune}


def test_mae_pretrains_on_the_simulator_frames(driving):
    assert (driving["root"] / "pretrain" / "encoder.safetensors").is_file()
    assert driving["pretrain"]["steps"] == 2
    encoder = json.loads((driving["root"] / "pretrain" / "encoder.json").read_text())["encoder"]
    assert encoder["patch_size"] == 4  # the smoke config's pretrain.patch_size, not the preset's 8 at 32 px


def test_pretraining_a_finished_run_again_keeps_its_recorded_timing(driving):
    again = _ok("pretrain", "driving", "--out", str(driving["root"] / "pretrain"), *_smoke_sets())
    recorded = json.loads((driving["root"] / "pretrain" / "metrics.json").read_text())
    assert again["seconds"] == recorded["seconds"] == driving["pretrain"]["seconds"] > 0
    assert recorded["resumed_from_step"] == 0  # the call that trained, not the one that found it done


def test_finetune_scores_the_torch_model_on_both_held_out_sets(driving):
    metrics, run = driving["finetune"], driving["root"] / "finetune"
    config = json.loads((run / "model" / "commentary.json").read_text())
    assert config["config"]["encoder"]["patch_size"] == 4  # read from the pretrained encoder's encoder.json
    assert not list(run.rglob("*.onnx")) and model_folder(run) == run / "model"  # export converts, not finetune
    assert set(metrics["evaluation"]) == {"test_seeds", "test_scenario"}
    for scores in metrics["evaluation"].values():
        assert scores["samples"] == 2
        for key in ("action", "cause"):
            assert 0.0 <= scores["commentary"][key]["accuracy"] <= 1.0
        assert "bleu_4" in scores["commentary"]["caption"] and scores["qa"]["count"] > 0


def test_evaluate_scores_any_dataset_in_the_generic_format(driving, tmp_path):
    samples = run_episode("highway", 77, clip_length=2, frame_size=32, steps_per_episode=4)
    write_dataset(samples, tmp_path / "mine")
    scores = _ok(
        "evaluate",
        "driving",
        "--run",
        str(driving["root"] / "finetune"),
        "--data",
        str(tmp_path / "mine"),
        "--set",
        "evaluate.max_samples=null",
    )  # the run's recipe caps evaluation at 2 samples
    assert scores["samples"] == len(samples) and scores["commentary"]["action"]["count"] == len(samples)
    runtime = CommentaryRuntime(model_folder(driving["root"] / "finetune"))
    for told in (True, False):  # with the samples' driver settings, and as for a car that does not report them
        scored = (
            scores
            if told
            else _ok(
                "evaluate",
                "driving",
                "--run",
                str(driving["root"] / "finetune"),
                "--data",
                str(tmp_path / "mine"),
                "--set",
                "evaluate.driver_settings=false",
            )
        )
        for sample, example in zip(samples, scored["examples"]):
            wanted = sample.driver_settings() if told else None
            assert (
                example["generated"]
                == runtime.comment(sample.frames, sample.speed_trace(), driver_settings=wanted).text
            )


def test_evaluate_names_a_wrong_clip_length_and_a_missing_run(driving, tmp_path):
    samples = run_episode("highway", 78, clip_length=3, frame_size=32, steps_per_episode=4)
    write_dataset(samples, tmp_path / "k3")
    result = run_vfm("evaluate", "driving", "--run", str(driving["root"] / "finetune"), "--data", str(tmp_path / "k3"))
    assert result.returncode == 2 and "frames" in result.stderr and "fix:" in result.stderr
    result = run_vfm("evaluate", "driving", "--run", str(tmp_path))
    assert result.returncode == 2 and "not a driving run" in result.stderr


def test_export_bundles_the_model_and_example_episodes(driving, tmp_path):
    result = run_vfm("export", "driving", "--run", str(driving["root"] / "finetune"), "--out", str(tmp_path / "b"))
    assert result.returncode == 0, result.stderr[-2000:]
    bundle = load_bundle(tmp_path / "b")
    examples = bundle.examples()
    assert examples and examples[0].name.endswith("_roundabout.npz")  # the unseen scenario first
    with np.load(examples[0]) as episode:
        frames, speed, text = episode["frames"], episode["ego_speed"], episode["commentary"]
        settings = episode["driver_settings"]  # the episode's driver: its cruise speed and time gap
    assert frames.dtype == np.uint8 and frames.shape[1:] == (32, 32, 3)
    assert len(speed) == len(text) == len(frames) and np.isfinite(speed).all() and text[0] == "" and text[-1]
    assert settings.shape == (2,) and np.isfinite(settings).all()
    assert "action_accuracy" in (tmp_path / "b" / "MODEL_CARD.md").read_text()
    parity = json.loads((tmp_path / "b" / "parity.json").read_text())
    assert parity["passed"] and parity["checks"]["tokens"]["cached_match"] == parity["checks"]["tokens"]["cases"]
    exported, trained = CommentaryRuntime(tmp_path / "b"), CommentaryRuntime(driving["root"] / "finetune" / "model")
    clip = frames[-2:]
    assert exported.comment(clip, speed[-2:]).tokens == trained.comment(clip, speed[-2:]).tokens
    assert not list(tmp_path.glob(".b.onnx.*"))  # the staging folder is gone


def test_export_names_a_folder_that_is_not_a_training_run(tmp_path):
    result = run_vfm("export", "driving", "--run", str(tmp_path), "--out", str(tmp_path / "b"))
    assert result.returncode == 2 and "not a driving training run" in result.stderr and "fix:" in result.stderr
    assert not (tmp_path / "b").exists()


def test_distinct_frames_drops_the_overlap_of_clips():
    samples = run_episode("highway", 5, clip_length=3, frame_size=32, steps_per_episode=6)
    frames = distinct_frames(samples)
    assert frames.shape == (len(samples) + 2, 32, 32, 3)


def test_retired_options_read_at_their_old_default_and_are_refused_otherwise():
    """Configs written before data.road_camera and finetune.motion were removed hold their defaults."""
    pipeline = DrivingPipeline(get_plugin("driving"))
    fresh = pipeline.resolve({})
    old = pipeline.resolve({"data": {"road_camera": "square"}, "finetune": {"motion": False}})
    assert old == fresh and "road_camera" not in fresh["data"] and "motion" not in fresh["finetune"]
    assert pipeline._synthetic_folder(old["data"]) == pipeline._synthetic_folder(fresh["data"])
    with pytest.raises(VfmError, match="data.road_camera='folded' is no longer an option"):
        pipeline.resolve({"data": {"road_camera": "folded"}})
    with pytest.raises(VfmError, match="finetune.motion=True is no longer an option"):
        pipeline.resolve({"finetune": {"motion": True}})


def test_validate_runs_every_step():
    from vfm.platform.validate import validate_plugin

    report = validate_plugin(get_plugin("driving"))
    assert report["passed"], report["steps"]
    assert [s["step"] for s in report["steps"]] == ["schema", "imports", "forward", "export_parity", "demo"]
