"""The highway-env scenarios the driving data is generated from, and their top-down camera.

A :class:`Scenario` names a highway-env environment, its configuration (traffic, duration,
frequencies) and the camera (metres shown across the frame, where the ego car sits in it).
:func:`make_env` builds and resets one, deterministically for a seed; :func:`render_frame`
returns the camera picture as ``uint8 [S, S, 3]``.

Scenarios (``SCENARIOS``):

- ``highway``: a 3-lane motorway in dense traffic (following, overtaking, cut-ins, keeping right);
- ``merge``: the ego car on the motorway's right lane while cars join from an on-ramp;
- ``on_ramp``: the ego car on the on-ramp, which ends: it must find a gap and merge left;
- ``intersection``: a 4-way junction without lights; the ego road gives way to the crossing road;
- ``roundabout``: a 2-lane roundabout; the ego car enters and gives way to the ring's traffic;
- ``two_way``: a two-lane road with oncoming traffic; overtaking uses the oncoming lane.

Headless rendering uses SDL's ``offscreen`` video driver (``dummy`` draws black frames), set
before pygame is first imported unless the caller chose another driver.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any

os.environ.setdefault("SDL_VIDEODRIVER", "offscreen")
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

import numpy as np  # noqa: E402
from highway_env import utils  # noqa: E402
from highway_env.envs import HighwayEnv, IntersectionEnv, MergeEnv, RoundaboutEnv, TwoWayEnv  # noqa: E402
from highway_env.envs.common.abstract import AbstractEnv  # noqa: E402
from highway_env.vehicle.behavior import IDMVehicle  # noqa: E402

from vfm.platform.errors import VfmError  # noqa: E402

SIMULATION_HZ = 10
"""Physics steps per second."""

DECISION_HZ = 2
"""Decisions (samples) per second: the policy acts, and a frame is rendered, every 0.5 s."""


class JunctionIDMVehicle(IDMVehicle):
    """The other cars at junctions. highway-env's intersection retunes its vehicle class's
    class attributes (jam distance, comfort accelerations) at every reset; giving it this
    subclass keeps that change away from the motorway scenarios' ``IDMVehicle``, so a
    scenario's episodes do not depend on which scenarios ran before in the process."""


_JUNCTION_VEHICLES = f"{JunctionIDMVehicle.__module__}.{JunctionIDMVehicle.__qualname__}"


class MergeTrafficEnv(MergeEnv):
    """highway-env's merge, with ``ramp_vehicles`` cars on the on-ramp (one in the original)
    and ``highway_vehicles`` more cars on the motorway, at seeded positions and speeds."""

    @classmethod
    def default_config(cls) -> dict:
        config = super().default_config()
        config.update({"ramp_vehicles": 3, "highway_vehicles": 3})
        return config

    def _make_vehicles(self) -> None:
        super()._make_vehicles()
        vehicle_type = utils.class_from_path(self.config["other_vehicles_type"])
        ramp = self.road.network.get_lane(("j", "k", 0))
        for i in range(self.config["ramp_vehicles"] - 1):
            longitudinal = 40.0 + 30.0 * i + self.np_random.uniform(-6.0, 6.0)
            vehicle = vehicle_type(
                self.road, ramp.position(longitudinal, 0.0), speed=18.0 + self.np_random.uniform(-2.0, 2.0)
            )
            vehicle.target_speed = 28.0
            self.road.vehicles.append(vehicle)
        _add_highway_traffic(self, self.config["highway_vehicles"], start=110.0)


class OnRampEnv(MergeEnv):
    """highway-env's merge road with the ego car on the on-ramp, behind ``highway_vehicles``
    cars on the motorway: the ramp ends at an obstacle, so the ego car has to merge left."""

    @classmethod
    def default_config(cls) -> dict:
        config = super().default_config()
        config.update({"highway_vehicles": 6})
        return config

    def _make_vehicles(self) -> None:
        road = self.road
        ramp = road.network.get_lane(("j", "k", 0))
        ego = self.action_type.vehicle_class(road, ramp.position(70.0, 0.0), speed=20.0)
        road.vehicles.append(ego)
        self.vehicle = ego
        _add_highway_traffic(self, self.config["highway_vehicles"], start=20.0)


def _add_highway_traffic(env: MergeEnv, count: int, start: float) -> None:
    """``count`` IDM cars on the two motorway lanes, about 30 m apart from ``start`` metres."""
    vehicle_type = utils.class_from_path(env.config["other_vehicles_type"])
    for i in range(count):
        lane = env.road.network.get_lane(("a", "b", int(env.np_random.integers(2))))
        longitudinal = start + 30.0 * i + env.np_random.uniform(-6.0, 6.0)
        vehicle = vehicle_type(
            env.road, lane.position(longitudinal, 0.0), speed=24.0 + env.np_random.uniform(-4.0, 4.0)
        )
        vehicle.randomize_behavior()
        env.road.vehicles.append(vehicle)


@dataclass(frozen=True)
class Scenario:
    """One scenario type.

    Attributes:
        name: the scenario's name (``DrivingSample.scenario``).
        env_class: the highway-env environment class.
        config: overrides of the environment's default configuration.
        view_m: metres of road shown across the (square) frame.
        centering: where the ego car sits in the frame (fractions of width, height). On the
            roads, 100 m across with the car a quarter from the left edge: the camera shows the
            75 m ahead in which the driver reacts to nearly every car it follows (70 m on the
            ramp; measured: docs/log/driving.md, 'Reading the scene', item 2); at 96 px a frame
            has about a pixel per metre.
        cruise_speed: range of the ego driver's desired speed, m/s (drawn per episode).
        duration_s: the episode's default length in seconds.
        lane_changes: whether the ego car may change lanes here.
        keep_right: whether it returns to the right lane when that lane is free.
        overtake_on_right: whether it may pass a slower car on the right.
    """

    name: str
    env_class: type[AbstractEnv]
    config: dict[str, Any] = field(default_factory=dict)
    view_m: float = 60.0
    centering: tuple[float, float] = (0.3, 0.5)
    cruise_speed: tuple[float, float] = (25.0, 30.0)
    duration_s: float = 15.0
    lane_changes: bool = True
    keep_right: bool = True
    overtake_on_right: bool = False

    @property
    def decision_steps(self) -> int:
        """Decision steps in a default-length episode."""
        return int(round(self.duration_s * DECISION_HZ))


_META_ALL = {"type": "DiscreteMetaAction", "longitudinal": True, "lateral": True}

SCENARIOS: dict[str, Scenario] = {
    scenario.name: scenario
    for scenario in (
        Scenario(
            "highway",
            HighwayEnv,
            {"lanes_count": 3, "vehicles_count": 16, "vehicles_density": 1.0, "ego_spacing": 1.5, "duration": 40},
            view_m=100.0,
            centering=(0.25, 0.5),
            cruise_speed=(22.0, 30.0),
            duration_s=16.0,
        ),
        Scenario(
            "merge",
            MergeTrafficEnv,
            {},
            view_m=100.0,
            centering=(0.25, 0.5),
            cruise_speed=(26.0, 31.0),
            duration_s=12.0,
        ),
        Scenario(
            "on_ramp",
            OnRampEnv,
            {},
            view_m=100.0,
            centering=(0.3, 0.4),
            cruise_speed=(22.0, 27.0),
            duration_s=14.0,
            keep_right=False,
        ),
        Scenario(
            "intersection",
            IntersectionEnv,
            {
                "destination": None,
                "duration": 20,
                "spawn_probability": 0.7,
                "initial_vehicle_count": 12,
                "other_vehicles_type": _JUNCTION_VEHICLES,
            },
            view_m=55.0,
            centering=(0.5, 0.6),
            cruise_speed=(7.0, 9.5),
            duration_s=14.0,
            lane_changes=False,
            keep_right=False,
        ),
        Scenario(
            "roundabout",
            RoundaboutEnv,
            {"duration": 20, "other_vehicles_type": _JUNCTION_VEHICLES},
            view_m=70.0,
            centering=(0.5, 0.6),
            cruise_speed=(8.0, 11.0),
            duration_s=14.0,
            lane_changes=False,
            keep_right=False,
        ),
        Scenario(
            "two_way",
            TwoWayEnv,
            {},
            view_m=100.0,
            centering=(0.25, 0.5),
            cruise_speed=(27.0, 31.0),
            duration_s=16.0,
            overtake_on_right=False,
        ),
    )
}
"""Every scenario, by name."""

DEFAULT_SCENARIOS = ("highway", "merge", "intersection", "roundabout")
"""The scenarios a default dataset is made of."""


def get_scenario(name: str) -> Scenario:
    """The scenario called ``name``.

    Raises:
        VfmError: no such scenario.
    """
    if name not in SCENARIOS:
        raise VfmError(
            f"unknown driving scenario {name!r}", where="scenarios", fix=f"use one of {', '.join(SCENARIOS)}"
        )
    return SCENARIOS[name]


MIN_RENDER_PX_PER_M = 4.0
"""highway-env outlines every car with a 1-pixel black border: below about 4 pixels per metre
the border swallows the car's colour, so the camera renders at least this fine, then averages down."""


def supersample_for(name: str, frame_size: int) -> int:
    """The smallest integer factor that renders ``name`` at :data:`MIN_RENDER_PX_PER_M` or finer."""
    return max(1, math.ceil(MIN_RENDER_PX_PER_M * get_scenario(name).view_m / frame_size))


def make_env(name: str, seed: int, frame_size: int = 64, supersample: int | None = None) -> AbstractEnv:
    """The scenario's environment, reset with ``seed`` (same seed -> same episode).

    Every scenario is driven the same way: the full meta-action set (lane changes through
    ``LANE_LEFT``/``LANE_RIGHT``), physics at :data:`SIMULATION_HZ`, decisions at
    :data:`DECISION_HZ`, and an off-screen camera of ``frame_size * supersample`` pixels
    (:func:`render_frame` averages it down to ``frame_size``; default :func:`supersample_for`),
    showing the scenario's ``view_m`` square of road.
    """
    scenario = get_scenario(name)
    supersample = supersample or supersample_for(name, frame_size)
    if frame_size < 8 or supersample < 1:
        raise VfmError(
            f"frame size {frame_size} / supersample {supersample} is too small",
            where="make_env",
            fix="use a frame size of at least 8 pixels and supersample >= 1",
        )
    width = frame_size * supersample
    config = {
        "observation": {"type": "Kinematics"},
        "action": dict(_META_ALL),
        "simulation_frequency": SIMULATION_HZ,
        "policy_frequency": DECISION_HZ,
        "screen_width": width,
        "screen_height": width,
        "scaling": width / scenario.view_m,
        "centering_position": list(scenario.centering),
        **scenario.config,
    }
    env = scenario.env_class(config=config, render_mode="rgb_array")
    env.reset(seed=seed)
    return env


def render_frame(env: AbstractEnv, frame_size: int) -> np.ndarray:
    """The camera picture, ``uint8 [frame_size, frame_size, 3]``: the rendered image averaged over
    ``f x f`` blocks (anti-aliased small frames)."""
    image = env.render()
    height, width = image.shape[:2]
    factor = width // frame_size
    if factor < 1 or (height, width) != (frame_size * factor, frame_size * factor):
        raise VfmError(
            f"rendered image {image.shape} does not match frame size {frame_size}",
            where="render_frame",
            fix="build the environment with make_env(..., frame_size=frame_size)",
        )
    blocks = image.reshape(frame_size, factor, frame_size, factor, 3).astype(np.float32)
    return np.rint(blocks.mean(axis=(1, 3))).astype(np.uint8)  # [S, S, 3]
