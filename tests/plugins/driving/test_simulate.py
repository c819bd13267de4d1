"""The highway-env generator: real episodes at tiny sizes, determinism, frames, splits, the on-disk format."""

from __future__ import annotations

import json

import numpy as np
import pytest

from vfm.platform.errors import VfmError
from vfm.plugins.driving.loaders import load_generic
from vfm.plugins.driving.policy import DriverStyle
from vfm.plugins.driving.records import ACTIONS, CAUSES
from vfm.plugins.driving.scenarios import SCENARIOS, get_scenario, make_env, render_frame
from vfm.plugins.driving.simulate import HELD_OUT_SEED_OFFSET, generate, run_episode, split_plan, write_dataset

SIZE, K = 48, 3


@pytest.fixture(scope="module")
def samples():
    return generate(
        4,
        ["highway", "merge", "intersection", "roundabout"],
        seed=3,
        clip_length=K,
        frame_size=SIZE,
        steps_per_episode=8,
    )


def test_samples_have_clips_labels_and_text(samples):
    assert {s.scenario for s in samples} == {"highway", "merge", "intersection", "roundabout"}
    for sample in samples:
        assert sample.frames.shape == (K, SIZE, SIZE, 3) and sample.frames.dtype == np.uint8
        assert sample.action in ACTIONS and sample.cause in CAUSES
        assert sample.commentary.endswith(".") and len(sample.qa) >= 7
        assert sample.step >= K - 1 and sample.id == f"{sample.scenario}-s{sample.seed}-t{sample.step:03d}"
        assert sample.ego_speed == sample.facts["ego_speed_mps"] == sample.frame_speeds[-1]
        assert len(sample.frame_speeds) == K and min(sample.frame_speeds) >= 0
        style = DriverStyle.draw(get_scenario(sample.scenario), sample.seed)  # what the driver wants
        assert (sample.set_speed, sample.set_time_gap) == (round(style.cruise_speed, 2), round(style.time_headway, 2))


def test_speed_traces_follow_the_drive(samples):
    by_step = {(s.scenario, s.step): s for s in samples}
    pairs = [(by_step[key], s) for s in samples if (key := (s.scenario, s.step - 1)) in by_step]
    assert pairs
    for before, after in pairs:  # the window slides by one frame per decision
        assert after.frame_speeds[:-1] == before.frame_speeds[1:]


def test_frames_are_rendered_not_black(samples):
    frames = np.stack([s.frames for s in samples])
    assert frames.mean() > 40  # grey road, white lines (SDL "dummy" would give all zeros)
    assert len(np.unique(frames.reshape(-1, 3), axis=0)) > 10
    colour = frames.astype(int)
    ego_green = (colour[..., 1] > colour[..., 0] + 15) & (colour[..., 1] > colour[..., 2] + 15)
    assert ego_green.reshape(len(frames), -1).any(axis=1).mean() > 0.9  # the ego car is in view


def test_same_seed_same_bytes_and_text():
    first = run_episode("highway", 11, clip_length=2, frame_size=SIZE, steps_per_episode=5)
    second = run_episode("highway", 11, clip_length=2, frame_size=SIZE, steps_per_episode=5)
    other = run_episode("highway", 12, clip_length=2, frame_size=SIZE, steps_per_episode=5)
    assert [s.frames.tobytes() for s in first] == [s.frames.tobytes() for s in second]
    assert [(s.commentary, s.qa, s.facts) for s in first] == [(s.commentary, s.qa, s.facts) for s in second]
    assert [s.frames.tobytes() for s in first] != [s.frames.tobytes() for s in other]


def test_a_junction_episode_does_not_change_later_highway_episodes():
    before = run_episode("highway", 5, clip_length=1, frame_size=16, steps_per_episode=4)
    run_episode("intersection", 5, clip_length=1, frame_size=16, steps_per_episode=2)
    after = run_episode("highway", 5, clip_length=1, frame_size=16, steps_per_episode=4)
    assert [s.commentary for s in before] == [s.commentary for s in after]


def test_clip_ends_at_the_decision_step():
    samples = run_episode("two_way", 2, clip_length=3, frame_size=SIZE, steps_per_episode=6)
    for earlier, later in zip(samples, samples[1:]):
        assert np.array_equal(earlier.frames[1:], later.frames[:-1])  # clips slide one decision at a time


def test_every_scenario_builds_and_renders():
    for name in SCENARIOS:
        env = make_env(name, 0, frame_size=16, supersample=1)
        frame = render_frame(env, 16)
        env.close()
        assert frame.shape == (16, 16, 3) and frame.mean() > 40


def test_frames_too_small_to_render_are_refused():
    with pytest.raises(VfmError, match="frame size 4 / supersample 1 is too small"):
        make_env("highway", 0, frame_size=4, supersample=1)


def test_split_plan_holds_out_seeds_and_a_scenario():
    plan = split_plan(["highway", "merge", "roundabout"], n_train=4, n_held_out=2)
    assert plan.held_out_scenario == "roundabout"
    assert all(name != "roundabout" for name, _ in plan.train)
    assert {name for name, _ in plan.test_scenario} == {"roundabout"}
    train_seeds = {seed for _, seed in plan.train}
    assert not train_seeds & {seed for _, seed in plan.test_seeds + plan.test_scenario}
    assert min(seed for _, seed in plan.test_seeds) == HELD_OUT_SEED_OFFSET
    with pytest.raises(VfmError, match="held-out scenario"):
        split_plan(["highway"], held_out_scenario="roundabout")
    with pytest.raises(VfmError, match="unknown driving scenario"):
        split_plan(["motorway"])


def test_write_then_load_round_trips(samples, tmp_path):
    target = write_dataset(samples, tmp_path / "data")
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging folder left behind
    pngs = list((target / "frames").glob("*.png"))
    assert len(pngs) < sum(len(s.frames) for s in samples)  # overlapping clips share frame files
    loaded = load_generic(target, clip_length=K)
    assert [s.id for s in loaded] == [s.id for s in samples]
    for original, back in zip(samples, loaded):
        assert np.array_equal(original.frames, back.frames)
        assert (back.action, back.cause, back.commentary, back.qa, back.facts, back.frame_speeds) == (
            original.action,
            original.cause,
            original.commentary,
            original.qa,
            original.facts,
            original.frame_speeds,
        )
        np.testing.assert_array_equal(back.driver_settings(), original.driver_settings())
    json.loads((target / "samples.jsonl").read_text().splitlines()[0])
    with pytest.raises(VfmError, match="already exists"):
        write_dataset(samples, target)
    write_dataset(samples[:2], target, overwrite=True)
    assert len(load_generic(target)) == 2
