"""The driving bundle's predictor on a real tiny bundle (real ONNX sessions, torch-free at
inference): a timeline over every window, answers, explanations, every clip format giving the same
commentary, speeds, bad input as one-line errors, and ``vfm predict`` output."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vfm.platform.bundle import write_bundle
from vfm.platform.errors import VfmError
from vfm.plugins.driving import plugin
from vfm.plugins.driving import predictor as predictor_module
from vfm.plugins.driving.commentary import parse_commentary
from vfm.plugins.driving.decode import CommentaryRuntime
from vfm.plugins.driving.export import export_commentary
from vfm.plugins.driving.training import clip_array
from vfm.serve.runtime import open_predictor

from .tiny_commentary import draw_clip, make_samples, one_thread, quick_fit, tiny_model, tiny_tokenizer

pytestmark = pytest.mark.slow  # the session's bundle exports three graphs with torch.onnx (about 15 s, once)

K, SIZE = 3, 32
EPISODES = (("highway", 30.0, True), ("merge", 0.0, False))
"""(scenario, gap m, closing) of each bundled example episode."""
MODEL_FILES = ("encoder.onnx", "decoder.onnx", "decoder_step.onnx", "tokenizer.json", "driving_model.json")


def episode(gap: float, closing: bool, n: int = 6, seed: int = 0) -> dict[str, np.ndarray]:
    """An example episode as the bundle stores it: ``n`` frames and the speed at each (and the
    first episode the driver's settings)."""
    frames = draw_clip(n, SIZE, gap, closing, np.random.default_rng(seed))
    speed = np.linspace(20.0, 15.0, n, dtype=np.float32)
    commentary = np.array([""] * (K - 1) + ["Slowing down because the lead vehicle is closing."] * (n - K + 1))
    settings = {"driver_settings": np.array([25.0, 1.5], np.float32)} if seed == 0 else {}
    return {"frames": frames, "ego_speed": speed, "commentary": commentary, **settings}


def build_bundle(root: Path) -> Path:
    """A tiny commentary model (fitted a few steps), exported and bundled with two example
    episodes; built once per test session under ``root`` and reused by every module."""
    bundle = root / "driving-bundle"
    if (bundle / "SHA256SUMS").is_file():
        return bundle
    samples = make_samples(12, k=K, size=SIZE)
    tokenizer = tiny_tokenizer(samples)
    with one_thread():
        model = quick_fit(tiny_model(tokenizer, k=K, size=SIZE), tokenizer, samples, steps=12)
        export_commentary(
            model,
            tokenizer,
            root / "driving-model",
            np.stack([s.frames for s in samples[:2]]),
            clip_array(samples[:2])[1],
        )
    files: dict[str, bytes | str | Path] = {name: root / "driving-model" / name for name in MODEL_FILES}
    for i, (scenario, gap, closing) in enumerate(EPISODES):
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **episode(gap, closing, seed=i), scenario=np.array(scenario))
        files[f"examples/{i:02d}_{scenario}.npz"] = buffer.getvalue()
    return write_bundle(
        bundle,
        plugin_manifest=plugin.manifest,
        files=files,
        vfm_version="0.1.0",
        models={"encoder": "encoder.onnx", "decoder": "decoder.onnx", "decoder_step": "decoder_step.onnx"},
    )


@pytest.fixture(scope="session")
def driving_bundle(tmp_path_factory) -> Path:
    return build_bundle(tmp_path_factory.getbasetemp())


@pytest.fixture(scope="module")
def predictor(driving_bundle):
    with one_thread():  # onnxruntime reads VFM_NUM_THREADS when the sessions are made
        return open_predictor(driving_bundle)


@pytest.fixture(scope="module")
def example(driving_bundle) -> dict[str, np.ndarray]:
    with np.load(driving_bundle / "examples" / "00_highway.npz") as data:
        return {name: data[name] for name in data.files}


def test_timeline_comments_on_every_window_as_the_runtime_does(predictor, driving_bundle, example):
    result = predictor.predict(str(driving_bundle / "examples" / "00_highway.npz"))
    frames, speed = example["frames"], example["ego_speed"]
    assert (result["clip_frames"], result["frames_per_window"], result["windows"]) == (6, K, 4)
    assert [entry["step"] for entry in result["timeline"]] == [2, 3, 4, 5]
    assert result["ego_speed_source"] == "clip" and result["notes"] == []
    assert result["driver_settings"] == {"set_speed": 25.0, "set_time_gap": 1.5}  # the episode's
    runtime = CommentaryRuntime(driving_bundle)
    for entry in result["timeline"]:
        t = entry["step"]
        said = runtime.comment(
            frames[t - K + 1 : t + 1], speed[t - K + 1 : t + 1], driver_settings=example["driver_settings"]
        )
        assert entry["commentary"] == said.text and entry["ego_speed"] == pytest.approx(float(speed[t]))
        assert (entry["action"], entry["cause"]) == parse_commentary(said.text)
        assert entry["reference"] == str(example["commentary"][t])  # the episode's ground truth
        assert 0.0 < entry["confidence"] <= 1.0 and len(entry["frame_attention"]) == K
    assert np.array_equal(result["frames"], frames[-K:])
    assert result["overlay"].shape == (K, predictor_module.OVERLAY_SIZE, predictor_module.OVERLAY_SIZE, 3)
    assert result["overlay"].dtype == np.uint8 and result["overlay"].std() > 0


def test_question_is_answered_about_the_last_window(predictor, driving_bundle, example):
    path = str(driving_bundle / "examples" / "00_highway.npz")
    reply = predictor.predict(path, question="Why?")["answer"]
    expected = CommentaryRuntime(driving_bundle).answer(
        example["frames"][-K:], example["ego_speed"][-K:], "Why?", driver_settings=example["driver_settings"]
    )
    assert reply["answer"] == expected.text and reply["step"] == 5 and 0 < reply["confidence"] <= 1
    clip = {"frames": example["frames"], "ego_speed": example["ego_speed"]}
    assert predictor.ask(clip, "Why?", driver_settings=(25.0, 1.5)) == reply
    assert predictor.predict({"frames": example["frames"], "question": "Why?"})["answer"]["question"] == "Why?"
    with pytest.raises(VfmError, match="the question is empty"):
        predictor.ask(path, "  ")


def test_driver_settings_given_beat_the_episodes_and_an_upload_has_none(predictor, driving_bundle, example):
    path = str(driving_bundle / "examples" / "00_highway.npz")
    given = predictor.predict(path, driver_settings=(30.0, None))  # the time gap stays the episode's
    assert given["driver_settings"] == {"set_speed": 30.0, "set_time_gap": 1.5}
    runtime = CommentaryRuntime(driving_bundle)
    expected = runtime.comment(example["frames"][-K:], example["ego_speed"][-K:], driver_settings=(30.0, 1.5))
    assert given["timeline"][-1]["commentary"] == expected.text
    upload = predictor.predict({"frames": example["frames"], "ego_speed": example["ego_speed"]})
    assert upload["driver_settings"] == {"set_speed": None, "set_time_gap": None}
    with pytest.raises(VfmError, match="driver_settings") as caught:
        predictor.predict(path, driver_settings=(-5.0, 1.5))
    assert "fix:" in str(caught.value)


def test_every_lossless_clip_format_gives_the_same_commentary(predictor, example, tmp_path):
    frames = example["frames"]
    timeline = predictor.predict({"frames": frames})["timeline"]
    expected = [e["commentary"] for e in timeline]
    assert all(e["reference"] is None for e in timeline)  # only a ground-truth episode carries one
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, frame in enumerate(frames):
        Image.fromarray(frame).save(folder / f"{i:03d}.png")
    stills = [Image.fromarray(f) for f in frames]
    stills[0].save(tmp_path / "clip.png", save_all=True, append_images=stills[1:], duration=500)  # APNG, 2 Hz
    stills[0].save(tmp_path / "clip.webp", save_all=True, append_images=stills[1:], lossless=True, duration=500)
    np.savez(tmp_path / "clip.npz", frames=frames)
    for source in (
        folder,
        sorted(folder.iterdir()),
        tmp_path / "clip.png",
        tmp_path / "clip.webp",
        str(tmp_path / "clip.npz"),
        [str(tmp_path / "clip.npz")],
    ):
        result = predictor.predict(source)
        assert [e["commentary"] for e in result["timeline"]] == expected, source
        assert result["ego_speed_source"] == "unknown" and "speed is unknown" in result["notes"][0]
    gif = tmp_path / "clip.gif"
    stills[0].save(gif, save_all=True, append_images=stills[1:])  # palette: lossy, no durations
    assert len(predictor.predict(gif)["timeline"]) == 4


def test_speed_argument_beats_the_clip_and_other_frame_sizes_are_fitted(predictor, example, tmp_path):
    frames = example["frames"]
    given = predictor.predict({"frames": frames, "ego_speed": example["ego_speed"]}, ego_speed=12.5)
    assert given["ego_speed_source"] == "argument"
    assert {e["ego_speed"] for e in given["timeline"]} == {12.5}
    per_frame = predictor.read({"frames": frames, "ego_speed": 3.0}, ego_speed=[np.nan] * 5 + [7.0])
    assert per_frame.ego_speed.tolist() == [3.0] * 5 + [7.0] and per_frame.speed_source == "argument"
    wide = np.stack([np.asarray(Image.fromarray(f).resize((96, 64))) for f in frames])  # 96x64: cropped, resized
    fitted = predictor.predict({"frames": wide})
    assert fitted["frames"].shape == (K, SIZE, SIZE, 3) and len(fitted["timeline"]) == 4


def test_long_clips_comment_on_the_last_windows_and_say_so(predictor, example, monkeypatch):
    monkeypatch.setattr(predictor_module, "MAX_WINDOWS", 2)
    result = predictor.predict({"frames": example["frames"]})
    assert [e["step"] for e in result["timeline"]] == [4, 5] and result["windows"] == 4
    assert any("Only the last 2 windows (1 s)" in note and "first 2 are skipped" in note for note in result["notes"])


@pytest.mark.parametrize(
    ("source", "message"),
    [
        (lambda ex: ex["frames"][:2], "the clip has 2 frames, the model needs at least 3 (one per 0.5 s)"),
        (lambda ex: {"frames": ex["frames"], "ego_speed": [1.0, 2.0]}, "ego_speed has shape [2] but the clip has 6"),
        (lambda ex: {"frames": ex["frames"], "ego_speed": -3.0}, "ego_speed holds -3 m/s"),
        (lambda ex: ex["frames"][..., 0], "expected RGB frames"),
        (lambda ex: "missing.npz", "clip file not found"),
    ],
    ids=["too-short", "speed-length", "negative-speed", "not-rgb", "missing-file"],
)
def test_bad_input_is_one_line_error(predictor, example, source, message):
    with pytest.raises(VfmError, match=re.escape(message)) as err:
        predictor.predict(source(example))
    assert "\n" not in str(err.value) and "fix:" in str(err.value)


def test_smoke_inputs_name_the_first_episode(predictor, driving_bundle):
    files, speed = predictor.smoke_inputs()
    assert speed is None and Path(files[0]["path"]) == driving_bundle / "examples" / "00_highway.npz"
    assert [p.name for p in predictor.episodes()] == ["00_highway.npz", "01_merge.npz"]


def test_vfm_predict_runs_without_torch_prints_json_and_writes_the_overlay_strip(driving_bundle, predictor, tmp_path):
    episode_path = driving_bundle / "examples" / "01_merge.npz"
    script = (
        "import sys; sys.modules['torch'] = None\n"  # any import of torch now fails
        "from vfm.platform.cli import main\n"
        f"sys.exit(main(['predict', {str(driving_bundle)!r}, {str(episode_path)!r}, 'nope.gif', "
        f"'--explain-dir', {str(tmp_path / 'explain')!r}]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "VFM_NUM_THREADS": "1"},
    )
    assert done.stdout.strip(), done.stderr[-2000:]
    good, bad = json.loads(done.stdout)
    assert [e["commentary"] for e in good["timeline"]] == [
        e["commentary"] for e in predictor.predict(episode_path)["timeline"]
    ]
    assert "frames" not in good and "clip file not found" in bad["error"]
    strip = np.asarray(Image.open(good["overlay"]))
    assert strip.shape == (predictor_module.OVERLAY_SIZE, K * predictor_module.OVERLAY_SIZE, 3)
