"""Generate driving samples by running the scripted driver in highway-env, write them in the
generic on-disk format, and plan train / held-out splits.

One episode (a scenario and a seed) yields one :class:`DrivingSample` per decision step
(every 0.5 s) once ``clip_length`` frames exist: the clip ``uint8 [k, S, S, 3]`` of the last
``k`` decision-time frames ending at the step and the ego speed at each, the action and cause of the driver's command,
the facts, a commentary and question-answer pairs. Same (scenario, seed, settings) ->
byte-identical frames and text. Each sample carries the driver's settings (the style's cruise
speed and time gap, as an adaptive cruise control would report them). An episode ends at the scenario's duration (or
``steps_per_episode``), when highway-env ends it (arrival, end of the road) or at a crash
(the crash step itself is not a sample).
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import random
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from vfm.platform.errors import VfmError
from vfm.plugins.driving.annotate import SceneTracker, consistency_errors, label, observe
from vfm.plugins.driving.commentary import commentary, qa_pairs
from vfm.plugins.driving.policy import DriverStyle, ScriptedDriver
from vfm.plugins.driving.records import DrivingSample
from vfm.plugins.driving.scenarios import DECISION_HZ, DEFAULT_SCENARIOS, get_scenario, make_env, render_frame

_META_ACTIONS = {-1: "LANE_LEFT", 0: "IDLE", 1: "LANE_RIGHT"}


def run_episode(
    scenario: str,
    seed: int,
    clip_length: int = 4,
    frame_size: int = 64,
    steps_per_episode: int | None = None,
    supersample: int | None = None,
) -> list[DrivingSample]:
    """The samples of one episode (see the module docstring).

    Args:
        scenario: a name from ``SCENARIOS``.
        seed: the episode's seed (traffic and the driver's style).
        clip_length: ``k``, frames per sample (the first ``k - 1`` decisions give no sample).
        frame_size: ``S``, frame side in pixels.
        steps_per_episode: decision steps to run (default: the scenario's duration).
        supersample: render at ``S * supersample`` pixels and average down (default: fine
            enough to show each car's colour, ``scenarios.supersample_for``).
    """
    if clip_length < 1:
        raise VfmError(f"clip length {clip_length} must be at least 1", where="generate", fix="pass clip_length >= 1")
    spec = get_scenario(scenario)
    env = make_env(scenario, seed, frame_size=frame_size, supersample=supersample)
    style = DriverStyle.draw(spec, seed)
    driver = ScriptedDriver(spec, style)
    tracker = SceneTracker()
    frames = [render_frame(env, frame_size)]
    speeds = [round(float(env.vehicle.speed), 2)]  # the ego speed at each frame, as ``observe`` rounds it
    samples = []
    try:
        for step in range(steps_per_episode or spec.decision_steps):
            facts = observe(env, tracker)
            if facts["crashed"]:
                break
            command = driver.decide(facts)
            action, cause = label(command, facts)
            errors = consistency_errors(action, cause, facts)
            if errors:
                raise RuntimeError(f"{scenario} seed {seed} step {step}: inconsistent label: {'; '.join(errors)}")
            facts.update(
                cruise_speed_mps=round(style.cruise_speed, 2),
                target_speed_mps=round(command.target_speed, 3),
                commanded_accel_mps2=round(command.acceleration, 3),
                time_s=step / DECISION_HZ,
            )
            if len(frames) == clip_length:
                samples.append(_sample(scenario, seed, step, np.stack(frames), speeds, action, cause, facts, style))
            tracker.update(env.road.vehicles)
            env.vehicle.target_speed = command.target_speed
            meta_action = env.action_type.actions_indexes[_META_ACTIONS[command.lane_change]]
            _, _, terminated, truncated, _ = env.step(meta_action)
            frames = [*frames, render_frame(env, frame_size)][-clip_length:]
            speeds = [*speeds, round(float(env.vehicle.speed), 2)][-clip_length:]
            if terminated or truncated:
                break
    finally:
        env.close()
    return samples


def _sample(
    scenario: str,
    seed: int,
    step: int,
    clip: np.ndarray,
    speeds: list[float],
    action: str,
    cause: str,
    facts: dict,
    style: DriverStyle,
) -> DrivingSample:
    sample_id = f"{scenario}-s{seed}-t{step:03d}"
    rng = random.Random(sample_id)
    return DrivingSample(
        id=sample_id,
        scenario=scenario,
        frames=clip,
        ego_speed=float(facts["ego_speed_mps"]),
        action=action,
        cause=cause,
        commentary=commentary(action, cause, facts, rng),
        qa=qa_pairs(action, cause, facts, rng),
        facts=facts,
        seed=seed,
        step=step,
        frame_speeds=list(speeds),
        set_speed=round(style.cruise_speed, 2),
        set_time_gap=round(style.time_headway, 2),
    )


def generate_episodes(
    episodes: Sequence[tuple[str, int]],
    clip_length: int = 4,
    frame_size: int = 64,
    steps_per_episode: int | None = None,
    supersample: int | None = None,
) -> list[DrivingSample]:
    """The samples of each ``(scenario, seed)`` episode, in order (see :func:`run_episode`)."""
    return [
        sample
        for scenario, seed in episodes
        for sample in run_episode(scenario, seed, clip_length, frame_size, steps_per_episode, supersample)
    ]


def generate(
    n_episodes: int,
    scenarios: Sequence[str] = DEFAULT_SCENARIOS,
    seed: int = 0,
    clip_length: int = 4,
    frame_size: int = 64,
    steps_per_episode: int | None = None,
    supersample: int | None = None,
) -> list[DrivingSample]:
    """Samples from ``n_episodes`` episodes in all: episode ``i`` drives ``scenarios[i % len]``
    with seed ``seed + i``."""
    for name in scenarios:
        get_scenario(name)
    episodes = [(scenarios[i % len(scenarios)], seed + i) for i in range(n_episodes)]
    return generate_episodes(episodes, clip_length, frame_size, steps_per_episode, supersample)


HELD_OUT_SEED_OFFSET = 1_000_000
"""Held-out episodes use seeds from ``seed + HELD_OUT_SEED_OFFSET`` on, never a training seed."""


@dataclass(frozen=True)
class SplitPlan:
    """Which episodes each split drives, as ``(scenario, seed)`` pairs.

    Attributes:
        train: the training scenarios with the training seeds.
        test_seeds: the training scenarios with held-out seeds (new traffic, same road types).
        test_scenario: the held-out scenario type (never seen in training), held-out seeds.
        held_out_scenario: its name.
    """

    train: list[tuple[str, int]]
    test_seeds: list[tuple[str, int]]
    test_scenario: list[tuple[str, int]]
    held_out_scenario: str


def split_plan(
    scenarios: Sequence[str] = DEFAULT_SCENARIOS,
    n_train: int = 10,
    n_held_out: int = 3,
    held_out_scenario: str = "roundabout",
    seed: int = 0,
) -> SplitPlan:
    """A split by seed and by scenario type: ``n_train`` training episodes per training scenario
    (seeds ``seed ..``), ``n_held_out`` episodes per scenario with unseen seeds, and
    ``held_out_scenario`` only in ``test_scenario``.

    Raises:
        VfmError: an unknown scenario, the held-out one not among ``scenarios``, or
            ``n_train`` reaching into the held-out seeds.
    """
    for name in scenarios:
        get_scenario(name)
    if held_out_scenario not in scenarios:
        raise VfmError(
            f"held-out scenario {held_out_scenario!r} is not among {list(scenarios)}",
            where="split_plan",
            fix="pass held_out_scenario= one of the scenarios",
        )
    if n_train >= HELD_OUT_SEED_OFFSET:
        raise VfmError(
            f"{n_train} training episodes would reuse held-out seeds",
            where="split_plan",
            fix=f"use fewer than {HELD_OUT_SEED_OFFSET} training episodes per scenario",
        )
    seen = [name for name in scenarios if name != held_out_scenario]
    held = seed + HELD_OUT_SEED_OFFSET
    return SplitPlan(
        train=[(name, seed + i) for name in seen for i in range(n_train)],
        test_seeds=[(name, held + i) for name in seen for i in range(n_held_out)],
        test_scenario=[(held_out_scenario, held + i) for i in range(n_held_out)],
        held_out_scenario=held_out_scenario,
    )


def _png(frame: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(frame, mode="RGB").save(buffer, format="PNG")
    return buffer.getvalue()


def sample_to_json(sample: DrivingSample, frame_paths: list[str] | None) -> dict:
    """A sample as one ``samples.jsonl`` object (frames as relative paths, ``nan`` speeds and
    settings as null)."""
    record = asdict(sample)
    record["frames"] = frame_paths
    for name in ("ego_speed", "set_speed", "set_time_gap"):
        record[name] = None if math.isnan(record[name]) else record[name]
    if sample.frame_speeds is not None:
        record["frame_speeds"] = [None if math.isnan(v) else v for v in sample.frame_speeds]
    return record


def write_dataset(samples: Sequence[DrivingSample], directory: str | Path, overwrite: bool = False) -> Path:
    """Write ``samples`` in the generic format (``samples.jsonl`` + ``frames/<hash>.png``, one
    PNG per distinct frame, shared by overlapping clips) to ``directory``, atomically: into a
    temporary folder beside it, then renamed into place.

    Raises:
        VfmError: ``directory`` exists and ``overwrite`` is false.
    """
    target = Path(directory)
    if target.exists() and not overwrite:
        raise VfmError(
            "the dataset folder already exists", where=str(target), fix="choose a new folder or pass overwrite=True"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        (staging / "frames").mkdir()
        written: set[str] = set()
        with open(staging / "samples.jsonl", "w", encoding="utf-8") as out:
            for sample in samples:
                paths = None
                if sample.frames is not None:
                    paths = []
                    for frame in sample.frames:
                        data = _png(np.ascontiguousarray(frame))
                        name = f"frames/{hashlib.sha1(data).hexdigest()[:20]}.png"
                        if name not in written:
                            (staging / name).write_bytes(data)
                            written.add(name)
                        paths.append(name)
                out.write(json.dumps(sample_to_json(sample, paths), sort_keys=True) + "\n")
        if target.exists():
            retired = Path(tempfile.mkdtemp(prefix=f".{target.name}.old.", dir=target.parent))
            os.replace(target, retired / target.name)
            os.replace(staging, target)
            shutil.rmtree(retired)
        else:
            os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target
