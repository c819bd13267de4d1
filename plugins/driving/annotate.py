"""What the ego car perceives, read from the simulator state (never from the picture), and
the (action, cause) label of each decision.

:func:`observe` turns a highway-env state into ``facts``: a flat, JSON-safe dict of the
quantities the policy decides on and the commentary talks about. Distances are metres
bumper to bumper, speeds m/s, times seconds; ``None`` where the quantity does not exist
(no car ahead, no junction). Keys:

- ego: ``ego_speed_mps``, ``lane_id``, ``lanes_on_road``, ``lane_changing``, ``crashed``;
- ``oncoming_gap_m``: distance to a car coming head-on towards us in our lane (we are
  overtaking on a two-way road), else None;
- the vehicle ahead in our lane, going our way (within :data:`PERCEPTION_M`): ``lead_present``, ``gap_m``,
  ``lead_speed_mps``, ``closing_speed_mps`` (ours minus its, > 0: closing), ``time_headway_s``
  (gap / our speed), ``ttc_s`` (gap / closing speed), ``lead_cut_in`` (it moved into our lane
  from a neighbouring one in the last :data:`CUT_IN_MEMORY` decisions or is doing so),
  ``lead_from_ramp`` (it came from an on-ramp);
- counts: ``vehicles_ahead`` (any lane, within :data:`AHEAD_M` in front of us),
  ``vehicles_ahead_in_lane``;
- neighbouring lanes: ``left_lane_exists``, ``left_lane_free``, ``left_front_gap_m``,
  ``left_rear_gap_m``, ``left_front_speed_mps`` and the same for ``right_``;
- ramps: ``on_ramp`` (we are on one), ``lane_end_m`` (distance to where our lane ends),
  ``merging_vehicle`` / ``merging_gap_m`` (a car on the on-ramp beside or ahead of us, about
  to merge into our lane);
- junctions: ``in_junction``, ``distance_to_stop_m`` (to the give-way line), ``crossing_vehicles``
  (cars with priority whose path crosses ours in the next :data:`CONFLICT_HORIZON_S`),
  ``crossing_gap_m`` (distance to the nearest), ``must_yield``.

:func:`label` names a policy command with one of ``ACTIONS`` and one of ``CAUSES``;
:func:`consistency_errors` checks a label against the facts (used by tests and the
generator's self-check).
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any

import numpy as np
from highway_env.road.regulation import RegulatedRoad
from highway_env.vehicle.kinematics import Vehicle
from highway_env.vehicle.objects import Obstacle

from vfm.plugins.driving.records import ACTIONS, CAUSES

if TYPE_CHECKING:
    from highway_env.envs.common.abstract import AbstractEnv

    from vfm.plugins.driving.policy import Command

PERCEPTION_M = 100.0
"""Range within which the car ahead and neighbouring-lane cars are reported."""

AHEAD_M = 60.0
"""Range of the ``vehicles_ahead`` counts."""

CUT_IN_MEMORY = 3
"""Decisions (1.5 s) during which a car that entered our lane still counts as cutting in."""

CONFLICT_HORIZON_S = 4.0
"""How far ahead crossing paths are predicted."""

PROCEED_SPEED = 6.0
"""The speed the ego car is assumed to cross a junction at when it is slower (m/s)."""

STOP_SPEED = 0.5
"""A commanded speed at or below this is a stop (m/s)."""

ACCEL_THRESHOLD = 0.5
"""Commanded accelerations beyond +-this (m/s^2) are accelerate / slow down."""

GIVE_WAY_NODES = frozenset({"ir0", "ir1", "ir2", "ir3", "se", "ee", "ne", "we"})
"""Road-network nodes where a give-way line is: the intersection's and the roundabout's entries."""

JUNCTION_NODES = frozenset(
    {"ir0", "ir1", "ir2", "ir3", "il0", "il1", "il2", "il3", "se", "ex", "ee", "nx", "ne", "wx", "we", "sx"}
)
"""Nodes inside a junction: a lane between two of them is inside the junction."""

VALID_PAIRS: dict[str, frozenset[str]] = {
    "accelerate": frozenset({"free_road"}),
    "keep_speed": frozenset(
        {
            "target_speed_reached",
            "slower_lead_vehicle",
            "close_lead_vehicle",
            "cut_in",
            "merging_vehicle",
            "lane_blocked",
        }
    ),
    "slow_down": frozenset(
        {
            "slower_lead_vehicle",
            "close_lead_vehicle",
            "cut_in",
            "merging_vehicle",
            "lane_blocked",
            "end_of_lane",
            "target_speed_reached",
        }
    ),
    "stop": frozenset({"close_lead_vehicle", "crossing_traffic", "end_of_lane"}),
    "yield": frozenset({"crossing_traffic"}),
    "change_lane_left": frozenset({"free_lane_to_overtake", "merging_vehicle", "end_of_lane"}),
    "change_lane_right": frozenset({"free_lane_to_overtake", "free_road"}),
}
"""The causes each action can have (``change_lane_right`` + ``free_road``: back to the right lane)."""

assert set(VALID_PAIRS) == set(ACTIONS) and set().union(*VALID_PAIRS.values()) == set(CAUSES)


class SceneTracker:
    """The lanes every vehicle was in at the last :data:`CUT_IN_MEMORY` decisions: what
    :func:`observe` needs to tell a car that cut in from one that was always ahead."""

    def __init__(self) -> None:
        self._lanes: dict[Any, deque] = {}

    def update(self, vehicles: list[Vehicle]) -> None:
        """Record the current lane of each vehicle (call once per decision, after observing)."""
        alive = set(map(id, vehicles))
        self._lanes = {key: lanes for key, lanes in self._lanes.items() if key in alive}
        for vehicle in vehicles:
            self._lanes.setdefault(id(vehicle), deque(maxlen=CUT_IN_MEMORY)).append(vehicle.lane_index)

    def recent_lanes(self, vehicle: Vehicle) -> list:
        """The lane indexes ``vehicle`` had at the last decisions (oldest first)."""
        return list(self._lanes.get(id(vehicle), ()))


def _round(value: float | None) -> float | None:
    return None if value is None or not np.isfinite(value) else round(float(value), 2)


def _bumper_gap(ego: Vehicle, other: Any) -> float:
    """Distance between the two bodies along the line joining them (m, >= 0)."""
    length = getattr(other, "LENGTH", Vehicle.LENGTH)
    return max(0.0, float(np.linalg.norm(other.position - ego.position)) - (ego.LENGTH + length) / 2)


def _along(ego: Vehicle, other: Any) -> float:
    """``other``'s speed along the ego's heading (m/s; negative: oncoming)."""
    return float(np.dot(getattr(other, "velocity", np.zeros(2)), ego.direction))


def _lateral(ego: Vehicle, other: Any) -> float:
    offset = other.position - ego.position
    return float(ego.direction[0] * offset[1] - ego.direction[1] * offset[0])


def _is_ramp(env: AbstractEnv, lane_index: Any) -> bool:
    return lane_index is not None and bool(env.road.network.get_lane(lane_index).forbidden)


def _side_lane(env: AbstractEnv, ego: Vehicle, side: int) -> Any:
    """The lane index beside ours (``side`` -1: left, +1: right), or None (none, or a ramp)."""
    _from, _to, lane_id = ego.lane_index
    lanes = env.road.network.graph[_from][_to]
    index = (_from, _to, lane_id + side)
    if not 0 <= lane_id + side < len(lanes) or lanes[lane_id + side].forbidden:
        return None
    return index


def _side_facts(env: AbstractEnv, ego: Vehicle, side: int, prefix: str) -> dict[str, Any]:
    """Whether the lane beside us is free to move into: nothing beside us, enough room ahead
    (more for oncoming traffic, which closes at the sum of the speeds) and behind."""
    lane_index = _side_lane(env, ego, side)
    facts = {
        f"{prefix}_lane_exists": lane_index is not None,
        f"{prefix}_lane_free": False,
        f"{prefix}_front_gap_m": None,
        f"{prefix}_rear_gap_m": None,
        f"{prefix}_front_speed_mps": None,
    }
    if lane_index is None:
        return facts
    front, rear = env.road.neighbour_vehicles(ego, lane_index)
    speed = ego.speed
    free = True
    if front is not None:  # at any distance: oncoming traffic closes fast
        gap, front_speed = _bumper_gap(ego, front), _along(ego, front)
        facts[f"{prefix}_front_gap_m"], facts[f"{prefix}_front_speed_mps"] = _round(gap), _round(front_speed)
        if front_speed < 0:  # oncoming: room for ~8 s of overtaking at the closing speed
            free &= gap > (speed - front_speed) * 10.0
        else:
            free &= gap > 5.0 + 0.6 * speed and (speed - front_speed <= 0 or gap / (speed - front_speed) > 4.0)
    if rear is not None and np.linalg.norm(rear.position - ego.position) < PERCEPTION_M:
        gap, rear_speed = _bumper_gap(ego, rear), _along(ego, rear)
        facts[f"{prefix}_rear_gap_m"] = _round(gap)
        free &= gap > 5.0 + 0.3 * max(rear_speed, 0.0) and (rear_speed - speed <= 0 or gap / (rear_speed - speed) > 3.0)
    for vehicle in env.road.vehicles:  # a car already moving into that lane next to us
        if (
            vehicle is not ego
            and getattr(vehicle, "target_lane_index", None) == lane_index
            and vehicle.lane_index != lane_index
            and abs(ego.front_distance_to(vehicle)) < 15.0
        ):
            free = False
    facts[f"{prefix}_lane_free"] = bool(free)
    return facts


def _moved_in(env: AbstractEnv, ego: Vehicle, vehicle: Vehicle, tracker: SceneTracker) -> tuple[bool, bool]:
    """(cut in from a neighbouring lane, came from a ramp) for a car now ahead in our lane."""
    history = [*tracker.recent_lanes(vehicle), vehicle.lane_index]
    ego_lane = ego.lane_index
    from_ramp = any(_is_ramp(env, lane) for lane in history)
    changing = getattr(vehicle, "target_lane_index", vehicle.lane_index) != vehicle.lane_index
    cut_in = not from_ramp and (
        any(lane is not None and lane[2] != ego_lane[2] for lane in history)
        or (changing and vehicle.target_lane_index == ego_lane)
    )
    return cut_in, from_ramp


def _predict_ego(env: AbstractEnv, ego: Any, speed: float, times: np.ndarray) -> list[tuple[np.ndarray, float]]:
    """Where the ego car will be along its route at ``times`` at a constant ``speed``
    (highway-env's ``predict_trajectory_constant_speed`` with a chosen speed)."""
    longitudinal = ego.lane.local_coordinates(ego.position)[0]
    route = ego.route or [ego.lane_index]
    return [
        env.road.network.position_heading_along_route(route, longitudinal + speed * t, 0, ego.lane_index) for t in times
    ]


def _predict_other(vehicle: Vehicle, times: np.ndarray) -> list[np.ndarray]:
    """Where another car will be at ``times``: along its route at constant speed
    (``predict_trajectory_constant_speed``), or straight on when highway-env cannot follow
    its route (a route step without a lane id onto a road with fewer lanes raises IndexError)."""
    try:
        return list(vehicle.predict_trajectory_constant_speed(times)[0])
    except IndexError:
        return [vehicle.position + vehicle.velocity * t for t in times]


def _in_junction(lane_index: Any) -> bool:
    return lane_index is not None and lane_index[0] in JUNCTION_NODES and lane_index[1] in JUNCTION_NODES


def _distance_to_give_way(env: AbstractEnv, ego: Any) -> float | None:
    """Metres to the next give-way line along the route (within the next two lanes), or None."""
    lane_index, route = ego.lane_index, list(ego.route or [])
    remaining = ego.lane.length - ego.lane.local_coordinates(ego.position)[0]
    for _ in range(3):
        if lane_index[1] in GIVE_WAY_NODES and not _in_junction(lane_index):
            return max(0.0, remaining)
        following = [step for step in route if step[0] == lane_index[1]]
        if not following:
            return None
        lane_index = (following[0][0], following[0][1], following[0][2] or 0)
        remaining += env.road.network.get_lane(lane_index).length
    return None


def _junction_facts(env: AbstractEnv, ego: Any) -> dict[str, Any]:
    """Crossing traffic with priority over us: cars whose predicted path meets ours within
    :data:`CONFLICT_HORIZON_S` if we go now, that are in the junction, on a road of higher
    priority, or (equal priority) nearer the conflict (``RegulatedRoad.respect_priorities``)."""
    in_junction = _in_junction(ego.lane_index)
    stop_distance = None if in_junction else _distance_to_give_way(env, ego)
    facts = {
        "in_junction": in_junction,
        "distance_to_stop_m": _round(stop_distance),
        "crossing_vehicles": 0,
        "crossing_gap_m": None,
        "must_yield": False,
    }
    if stop_distance is None or stop_distance > 40.0:
        return facts
    times = np.arange(0.25, CONFLICT_HORIZON_S, 0.25)
    ours = _predict_ego(env, ego, max(ego.speed, PROCEED_SPEED), times)
    gaps = []
    for other in env.road.vehicles:
        if other is ego or np.linalg.norm(other.position - ego.position) > 70.0:
            continue
        heading_gap = abs((other.heading - ego.heading + np.pi) % (2 * np.pi) - np.pi)
        if heading_gap < np.radians(30) and ego.front_distance_to(other) > 0:
            continue  # same-direction traffic ahead is a car to follow, not crossing traffic
        meets = any(
            np.linalg.norm(p_ego - p_other) < 1.5 * Vehicle.LENGTH
            for (p_ego, _), p_other in zip(ours, _predict_other(other, times), strict=True)
        )
        if not meets:
            continue
        has_priority = (
            _in_junction(other.lane_index)
            or other.lane.priority > ego.lane.priority
            or (other.lane.priority == ego.lane.priority and RegulatedRoad.respect_priorities(ego, other) is ego)
        )
        if has_priority:
            gaps.append(_bumper_gap(ego, other))
    if gaps:
        facts.update(crossing_vehicles=len(gaps), crossing_gap_m=_round(min(gaps)), must_yield=True)
    return facts


def observe(env: AbstractEnv, tracker: SceneTracker) -> dict[str, Any]:
    """The ego car's facts at the current state (see the module docstring for the keys).

    ``tracker`` carries the vehicles' recent lanes; call ``tracker.update`` after each decision.
    """
    ego = env.vehicle
    road = env.road
    speed = float(ego.speed)
    facts: dict[str, Any] = {
        "ego_speed_mps": _round(speed),
        "lane_id": int(ego.lane_index[2]),
        "lanes_on_road": len(road.network.graph[ego.lane_index[0]][ego.lane_index[1]]),
        "lane_changing": getattr(ego, "target_lane_index", ego.lane_index) != ego.lane_index,
        "crashed": bool(ego.crashed),
        "on_ramp": _is_ramp(env, ego.lane_index),
    }

    front, _ = road.neighbour_vehicles(ego, ego.lane_index)
    in_range = isinstance(front, Vehicle) and _bumper_gap(ego, front) < PERCEPTION_M
    oncoming = in_range and _along(ego, front) < -0.8 * front.speed  # heading towards us (within ~35 degrees)
    lead = front if in_range and not oncoming else None
    facts["oncoming_gap_m"] = _round(_bumper_gap(ego, front)) if oncoming else None
    obstacles = [
        o
        for o in road.objects
        if isinstance(o, Obstacle) and _is_ramp(env, o.lane_index) and ego.front_distance_to(o) > 0
    ]
    facts["lane_end_m"] = (
        _round(min(_bumper_gap(ego, o) for o in obstacles)) if facts["on_ramp"] and obstacles else None
    )
    facts["lead_present"] = lead is not None
    if lead is not None:
        gap, lead_speed = _bumper_gap(ego, lead), _along(ego, lead)
        closing = speed - lead_speed
        cut_in, from_ramp = _moved_in(env, ego, lead, tracker)
        facts.update(
            gap_m=_round(gap),
            lead_speed_mps=_round(lead_speed),
            closing_speed_mps=_round(closing),
            time_headway_s=_round(gap / speed) if speed > 0.5 else None,
            ttc_s=_round(gap / closing) if closing > 0.1 else None,
            lead_cut_in=cut_in,
            lead_from_ramp=from_ramp,
        )
    else:
        facts.update(
            gap_m=None,
            lead_speed_mps=None,
            closing_speed_mps=None,
            time_headway_s=None,
            ttc_s=None,
            lead_cut_in=False,
            lead_from_ramp=False,
        )

    ahead = [
        v
        for v in road.vehicles
        if v is not ego and 0 < ego.front_distance_to(v) <= AHEAD_M and abs(_lateral(ego, v)) < 12.0
    ]
    facts["vehicles_ahead"] = len(ahead)
    facts["vehicles_ahead_in_lane"] = sum(abs(_lateral(ego, v)) < 2.0 for v in ahead)

    facts.update(_side_facts(env, ego, -1, "left"))
    facts.update(_side_facts(env, ego, +1, "right"))

    merging = [
        v
        for v in road.vehicles
        if v is not ego and _is_ramp(env, v.lane_index) and -10.0 <= ego.front_distance_to(v) <= 60.0
    ]
    rightmost = not facts["on_ramp"] and not facts["right_lane_exists"]
    facts["merging_vehicle"] = bool(merging) and rightmost
    facts["merging_gap_m"] = (
        _round(min(ego.front_distance_to(v) for v in merging)) if facts["merging_vehicle"] else None
    )

    facts.update(_junction_facts(env, ego))
    return facts


def label(command: Command, facts: dict[str, Any]) -> tuple[str, str]:
    """The (action, cause) of a policy command.

    The action follows from the command: a lane change; ``stop`` when the commanded speed is
    at most :data:`STOP_SPEED`; ``yield`` when slowing or waiting for crossing traffic;
    otherwise ``accelerate`` / ``slow_down`` / ``keep_speed`` by the commanded acceleration
    against :data:`ACCEL_THRESHOLD`. The cause is the rule of the policy that decided it.
    """
    if command.lane_change < 0:
        action = "change_lane_left"
    elif command.lane_change > 0:
        action = "change_lane_right"
    elif command.target_speed <= STOP_SPEED:
        action = "stop"
    elif command.cause == "crossing_traffic":
        action = "yield"
    elif command.acceleration > ACCEL_THRESHOLD:
        action = "accelerate"
    elif command.acceleration < -ACCEL_THRESHOLD:
        action = "slow_down"
    else:
        action = "keep_speed"
    return action, command.cause


def consistency_errors(action: str, cause: str, facts: dict[str, Any]) -> list[str]:
    """What is wrong with labelling a step with (``action``, ``cause``) given its ``facts``
    (empty when consistent): the pair must be valid, a lane change needs that lane free, and
    each cause needs its evidence (a car ahead, a cut-in, crossing traffic, ...)."""
    errors = []
    if action not in ACTIONS or cause not in CAUSES:
        return [f"unknown label ({action}, {cause})"]
    if cause not in VALID_PAIRS[action]:
        errors.append(f"{cause} is not a cause of {action}")
    if action == "change_lane_left" and not facts["left_lane_free"]:
        errors.append("changed to the left but the left lane is not free")
    if action == "change_lane_right" and not facts["right_lane_free"]:
        errors.append("changed to the right but the right lane is not free")
    evidence = {
        "slower_lead_vehicle": facts["lead_present"],
        "close_lead_vehicle": facts["lead_present"],
        "cut_in": facts["lead_present"] and facts["lead_cut_in"],
        "merging_vehicle": facts["merging_vehicle"] or (facts["lead_present"] and facts["lead_from_ramp"]),
        "crossing_traffic": facts["must_yield"] and facts["crossing_vehicles"] > 0,
        "end_of_lane": facts["lane_end_m"] is not None,
        "lane_blocked": (not facts["left_lane_free"] and facts["left_lane_exists"])
        or (not facts["right_lane_free"] and facts["right_lane_exists"]),
        "free_lane_to_overtake": facts["left_lane_free"] or facts["right_lane_free"],
    }
    if not evidence.get(cause, True):
        errors.append(f"{cause} without its evidence in the facts")
    return errors
