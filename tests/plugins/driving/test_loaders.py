"""The generic-format loader's errors, the BDD-X loader on a CSV in the real wide format, the text corpus."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
from PIL import Image

from vfm.platform.errors import VfmError
from vfm.plugins.driving.loaders import bddx_commentary, driving_text_corpus, load_bddx, load_generic
from vfm.plugins.driving.records import DrivingSample, QAPair
from vfm.plugins.driving.simulate import write_dataset


def sample(i, frames):
    return DrivingSample(
        id=f"x-{i}",
        scenario="highway",
        frames=frames,
        ego_speed=10.0,
        action="keep_speed",
        cause="target_speed_reached",
        commentary="Keeping our speed: the road ahead is clear.",
        qa=[QAPair("What are you doing?", "Keeping our speed.")],
        facts={"gap_m": None},
        seed=1,
        step=i,
    )


@pytest.fixture()
def dataset(tmp_path):
    rng = np.random.default_rng(0)
    clips = [rng.integers(0, 255, (2, 8, 8, 3), dtype=np.uint8) for _ in range(3)]
    return write_dataset([sample(i, clip) for i, clip in enumerate(clips)], tmp_path / "d")


def test_loads_what_was_written(dataset):
    loaded = load_generic(dataset, clip_length=2)
    assert [s.id for s in loaded] == ["x-0", "x-1", "x-2"] and loaded[0].frames.shape == (2, 8, 8, 3)


def test_frame_speeds_round_trip_and_are_checked(tmp_path):
    clip = np.zeros((2, 8, 8, 3), np.uint8)
    traced = DrivingSample(**{**vars(sample(0, clip)), "frame_speeds": [float("nan"), 10.0]})
    folder = write_dataset([traced, sample(1, clip)], tmp_path / "d")
    loaded = load_generic(folder)
    assert math.isnan(loaded[0].frame_speeds[0]) and loaded[0].frame_speeds[1] == 10.0
    assert loaded[1].frame_speeds is None
    assert np.isnan(loaded[1].speed_trace()[0]) and loaded[1].speed_trace()[-1] == 10.0
    manifest = folder / "samples.jsonl"
    record = json.loads(manifest.read_text().splitlines()[0])
    for bad, message in (
        ([10.0], "1 entries for 2 frames"),
        (["fast", 1.0], "not a list of numbers"),
        ([-1.0, 2.0], "negative"),
    ):
        manifest.write_text(json.dumps({**record, "frame_speeds": bad}) + "\n")
        with pytest.raises(VfmError, match=message) as err:
            load_generic(folder)
        assert "samples.jsonl:1" in str(err.value) and "fix:" in str(err.value)


def test_driver_settings_round_trip_and_are_checked(tmp_path):
    clip = np.zeros((2, 8, 8, 3), np.uint8)
    told = DrivingSample(**{**vars(sample(0, clip)), "set_speed": 27.5})
    folder = write_dataset([told, sample(1, clip)], tmp_path / "d")
    loaded = load_generic(folder)
    assert loaded[0].set_speed == 27.5 and math.isnan(loaded[0].set_time_gap)
    assert np.isnan(loaded[1].driver_settings()).all()
    manifest = folder / "samples.jsonl"
    record = json.loads(manifest.read_text().splitlines()[0])
    assert record["set_speed"] == 27.5 and record["set_time_gap"] is None
    for name, bad in (("set_speed", "fast"), ("set_speed", -1.0), ("set_time_gap", True), ("set_time_gap", [1.5])):
        manifest.write_text(json.dumps({**record, name: bad}) + "\n")
        with pytest.raises(VfmError, match=f"{name} is") as err:
            load_generic(folder)
        assert "samples.jsonl:1" in str(err.value) and "fix:" in str(err.value)


def test_missing_folder_and_manifest(tmp_path):
    with pytest.raises(VfmError, match="folder does not exist") as err:
        load_generic(tmp_path / "nope")
    assert "\n" not in str(err.value) and "fix:" in str(err.value)
    with pytest.raises(VfmError, match="samples.jsonl is missing"):
        load_generic(tmp_path)


def test_bad_json_line_names_its_number(dataset):
    manifest = dataset / "samples.jsonl"
    lines = manifest.read_text().splitlines()
    manifest.write_text("\n".join([lines[0], "{not json", *lines[1:]]) + "\n")
    with pytest.raises(VfmError, match="line 2 is not valid JSON") as err:
        load_generic(dataset)
    assert "samples.jsonl:2" in str(err.value)


def test_missing_field_and_unknown_label(dataset):
    manifest = dataset / "samples.jsonl"
    record = json.loads(manifest.read_text().splitlines()[0])
    manifest.write_text(json.dumps({k: v for k, v in record.items() if k != "cause"}) + "\n")
    with pytest.raises(VfmError, match="lacks one of the fields"):
        load_generic(dataset)
    manifest.write_text(json.dumps({**record, "action": "fly"}) + "\n")
    with pytest.raises(VfmError, match="unknown action"):
        load_generic(dataset)


def test_missing_frame_and_mismatched_sizes(dataset):
    record = json.loads((dataset / "samples.jsonl").read_text().splitlines()[0])
    first, second = record["frames"]
    (dataset / second).unlink()
    with pytest.raises(VfmError, match="frame file is missing") as err:
        load_generic(dataset)
    assert second in str(err.value)
    Image.fromarray(np.zeros((9, 8, 3), np.uint8)).save(dataset / second)
    with pytest.raises(VfmError, match="differ in size"):
        load_generic(dataset)


def test_wrong_clip_length(dataset):
    with pytest.raises(VfmError, match="the clip has 2 frames, expected 4"):
        load_generic(dataset, clip_length=4)


HEADER = ["Input.Video"] + [
    f"Answer.{i}{part}" for i in range(1, 16) for part in ("start", "end", "action", "justification")
]


def write_bddx(path, rows):
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        for video, answers in rows:
            cells = [video]
            for start, end, action, why in answers:
                cells += [start, end, action, why]
            writer.writerow(cells + [""] * (len(HEADER) - len(cells)))


def test_bddx_wide_csv(tmp_path):
    path = tmp_path / "bddx.csv"
    write_bddx(
        path,
        [
            (
                "https://s3.example/samples-1k/06d501fd-a9ffc960.mov",
                [
                    ("0", "11", "The car accelerates", "because the light has turned green."),
                    ("12", "19", "The car is moving at a steady speed", "because traffic is clear."),
                    ("20", "22", "The car slows down", "The car in front is stopped"),
                    (
                        "23",
                        "30",
                        "The car merges into the lane to its left",
                        "to get around a slower car in front of it.",
                    ),
                ],
            ),
            ("", []),  # blank rows are common in the real file
            (
                "https://s3.example/samples-1k/01b0505f-5f564e84.mov",
                [("0", "16", "The car is stopped.", "A car ahead cuts in"), ("16", "20", "The car turns right", "")],
            ),
        ],
    )
    samples = load_bddx(path)
    assert [s.id for s in samples] == [f"bddx-06d501fd-a9ffc960-{i}" for i in range(1, 5)] + [
        "bddx-01b0505f-5f564e84-1",
        "bddx-01b0505f-5f564e84-2",
    ]
    labels = [(s.action, s.cause) for s in samples]
    assert labels == [
        ("accelerate", None),
        ("keep_speed", "free_road"),
        ("slow_down", "close_lead_vehicle"),
        ("change_lane_left", "free_lane_to_overtake"),
        ("stop", "cut_in"),
        (None, None),
    ]
    assert samples[0].commentary == "The car accelerates because the light has turned green."
    assert samples[2].commentary == "The car slows down because the car in front is stopped."
    assert samples[3].commentary == (
        "The car merges into the lane to its left to get around a slower car in front of it."
    )
    assert samples[5].commentary == "The car turns right."
    assert all(s.frames is None and math.isnan(s.ego_speed) and s.scenario == "bddx" for s in samples)
    assert samples[0].facts["start_s"] == 0.0 and samples[0].facts["end_s"] == 11.0

    split = tmp_path / "test.txt"
    split.write_text("2_01b0505f-5f564e84\n")
    assert {s.id.rsplit("-", 1)[0] for s in load_bddx(path, split)} == {"bddx-01b0505f-5f564e84"}


def test_bddx_errors(tmp_path):
    with pytest.raises(VfmError, match="does not exist"):
        load_bddx(tmp_path / "missing.csv")
    other = tmp_path / "other.csv"
    other.write_text("video,action\nx,y\n")
    with pytest.raises(VfmError, match="no Input.Video column"):
        load_bddx(other)


def test_bddx_commentary_normalises():
    assert bddx_commentary("  The car stops.", "Because the light is red..") == (
        "The car stops because the light is red."
    )
    assert bddx_commentary("The car slows", "as traffic slows") == "The car slows as traffic slows."


def test_text_corpus_one_document_per_episode_and_video(tmp_path):
    samples = [sample(i, None) for i in range(3)]
    path = tmp_path / "bddx.csv"
    write_bddx(path, [("https://s3.example/v/abc.mov", [("0", "1", "The car stops", "the light is red")])])
    documents = driving_text_corpus(samples, bddx_csv=path)
    assert [(d.id, d.source) for d in documents] == [("driving-sim:highway-s1", "driving-sim"), ("bddx:abc", "bddx")]
    assert documents[0].record_ids == ("x-0", "x-1", "x-2")
    assert "Keeping our speed" in documents[0].text and documents[1].text == "The car stops because the light is red."
