"""The scripted driver of the ego car: a rule-based policy on the perceived facts.

Each decision (every 0.5 s) :meth:`ScriptedDriver.decide` reads the facts of
:func:`vfm.plugins.driving.annotate.observe` and returns a :class:`Command`: a commanded
acceleration (turned into the target speed the car's speed controller tracks), an optional
lane change, and the cause, one of ``CAUSES``: the rule that decided. Rules, first match wins:

1. give way (junctions): crossing traffic with priority and the give-way line still ahead:
   brake to stop at the line (``crossing_traffic``);
2. the lane ends (on-ramp): merge left when that lane is free (``end_of_lane``), else hold
   back (``lane_blocked``) and stop before the end (``end_of_lane``);
3. a car on the on-ramp is about to merge in front of us: move left when free, else make
   room (``merging_vehicle``);
4. a car coming head-on in our lane (overtaking on a two-way road): back to the right lane
   when it is free (``free_road``), else brake (``lane_blocked``);
5. a slower car ahead and we want to go faster: overtake on the left (or the right where
   allowed) when that lane is free (``free_lane_to_overtake``), else follow (``lane_blocked``);
6. keep right: back to the right lane when it is free and not slower (``free_road``);
7. car following (IDM with the driver's time headway): ``cut_in`` / ``merging_vehicle`` when
   the car ahead just came in, ``close_lead_vehicle`` under the safe gap or when stopping
   behind it, else ``slower_lead_vehicle``;
8. free road: speed up to the driver's cruise speed (``free_road``), hold it
   (``target_speed_reached``).

Each episode draws a driver style (cruise speed, headway, overtaking eagerness) from its seed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from highway_env.vehicle.controller import ControlledVehicle

from vfm.plugins.driving.annotate import ACCEL_THRESHOLD, STOP_SPEED
from vfm.plugins.driving.scenarios import DECISION_HZ, Scenario


@dataclass(frozen=True)
class Command:
    """One decision.

    Attributes:
        acceleration: the mean acceleration wanted over the next decision period (m/s^2).
        target_speed: the speed the car's speed controller is given (m/s, >= 0).
        lane_change: -1 left, 0 none, +1 right.
        cause: one of ``CAUSES``: the rule that decided.
    """

    acceleration: float
    target_speed: float
    lane_change: int
    cause: str


@dataclass(frozen=True)
class DriverStyle:
    """How this driver drives.

    Attributes:
        cruise_speed: desired speed on a free road (m/s).
        time_headway: desired time gap to the car ahead (s).
        min_gap: desired standstill gap (m).
        max_accel: comfortable acceleration (m/s^2).
        comfort_decel: comfortable deceleration (m/s^2).
        overtake_margin: overtake a car at least this much slower than ``cruise_speed`` (m/s).
    """

    cruise_speed: float
    time_headway: float = 1.5
    min_gap: float = 4.0
    max_accel: float = 2.0
    comfort_decel: float = 3.0
    overtake_margin: float = 3.0

    @classmethod
    def draw(cls, scenario: Scenario, seed: int) -> DriverStyle:
        """A style drawn from ``seed``: cruise speed in the scenario's range, headway in
        [1.2, 2.2] s, overtake margin in [1.5, 4.5] m/s."""
        rng = np.random.default_rng([seed, 7])
        low, high = scenario.cruise_speed
        return cls(
            cruise_speed=float(rng.uniform(low, high)),
            time_headway=float(rng.uniform(1.2, 2.2)),
            overtake_margin=float(rng.uniform(1.5, 4.5)),
        )


MAX_DECEL = 8.0
"""The strongest braking the policy commands (m/s^2)."""

SAFE_HEADWAY_S = 0.8
"""Below ``min_gap + SAFE_HEADWAY_S * speed`` the car ahead is too close."""


class ScriptedDriver:
    """The rule-based driver (see the module docstring).

    Args:
        scenario: where it drives (whether lane changes, keeping right and passing on the
            right are allowed).
        style: its driving style.
    """

    def __init__(self, scenario: Scenario, style: DriverStyle):
        self.scenario = scenario
        self.style = style
        self.period = 1.0 / DECISION_HZ

    def decide(self, facts: dict[str, Any]) -> Command:
        """The command for the state described by ``facts``."""
        style, speed = self.style, facts["ego_speed_mps"]
        free_accel = (
            style.max_accel if self._passing(facts) else style.max_accel * (1 - (speed / style.cruise_speed) ** 4)
        )
        follow_accel = self._idm(facts, free_accel)
        lateral_allowed = self.scenario.lane_changes and not facts["lane_changing"]

        if facts["must_yield"] and facts["distance_to_stop_m"] is not None:
            stop_accel = self._stop_at(facts["distance_to_stop_m"] - 1.0, speed)
            if stop_accel is not None:
                return self._command(speed, min(stop_accel, follow_accel), 0, "crossing_traffic")

        if facts["lane_end_m"] is not None:
            if lateral_allowed and facts["left_lane_free"]:
                return self._command(speed, follow_accel, -1, "end_of_lane")
            end_accel = self._stop_at(facts["lane_end_m"] - 2.0, speed)
            if end_accel is not None and (end_accel < -style.comfort_decel / 2 or facts["lane_end_m"] < 15.0):
                return self._command(speed, min(end_accel, follow_accel), 0, "end_of_lane")
            if facts["left_lane_exists"] and speed > 2.0:
                return self._command(speed, min(follow_accel, -1.0), 0, "lane_blocked")

        if facts["merging_vehicle"] and facts["merging_gap_m"] > -5.0:
            if lateral_allowed and facts["left_lane_free"]:
                return self._command(speed, min(follow_accel, 0.0), -1, "merging_vehicle")
            if facts["merging_gap_m"] < 40.0 and speed > 10.0:
                return self._command(speed, min(follow_accel, -1.0), 0, "merging_vehicle")

        if facts["oncoming_gap_m"] is not None and facts["right_lane_exists"]:
            if lateral_allowed and facts["right_lane_free"]:
                return self._command(speed, min(follow_accel, free_accel), +1, "free_road")
            if not facts["right_lane_free"]:
                return self._command(speed, -style.comfort_decel if speed > 3.0 else 0.0, 0, "lane_blocked")

        lead_slow = (
            facts["lead_present"]
            and facts["lead_speed_mps"] < style.cruise_speed - style.overtake_margin
            and facts["gap_m"] < 10.0 + 4.0 * speed
        )
        constrained = facts["lead_present"] and follow_accel < min(free_accel - 0.5, ACCEL_THRESHOLD)
        if lead_slow and lateral_allowed and facts["left_lane_free"] and facts["vehicles_ahead_in_lane"] <= 1:
            return self._command(speed, min(follow_accel, max(free_accel, 0.0)), -1, "free_lane_to_overtake")
        if lead_slow and lateral_allowed and self.scenario.overtake_on_right and facts["right_lane_free"]:
            return self._command(speed, min(follow_accel, max(free_accel, 0.0)), +1, "free_lane_to_overtake")

        if (
            self.scenario.keep_right
            and lateral_allowed
            and facts["right_lane_free"]
            and not lead_slow
            and self._right_lane_clear(facts)
        ):
            return self._command(speed, min(follow_accel, free_accel), +1, "free_road")

        if constrained:
            stopping = self._target(speed, follow_accel) <= STOP_SPEED
            if facts["lead_cut_in"] and not stopping:
                cause = "cut_in"
            elif facts["lead_from_ramp"] and not stopping:
                cause = "merging_vehicle"
            elif stopping or facts["gap_m"] < style.min_gap + SAFE_HEADWAY_S * speed:
                cause = "close_lead_vehicle"
            elif (
                lead_slow
                and lateral_allowed
                and (
                    (facts["left_lane_exists"] and not facts["left_lane_free"])
                    or (self.scenario.overtake_on_right and facts["right_lane_exists"] and not facts["right_lane_free"])
                )
            ):
                cause = "lane_blocked"  # we would overtake, but the lane we would use is taken
            else:
                cause = "slower_lead_vehicle"
            return self._command(speed, follow_accel, 0, cause)

        if free_accel > ACCEL_THRESHOLD:
            return self._command(speed, free_accel, 0, "free_road")
        return self._command(speed, free_accel, 0, "target_speed_reached")

    def _passing(self, facts: dict[str, Any]) -> bool:
        """We are overtaking: a slower car is in the lane to our right, less than 30 m ahead."""
        gap, speed = facts["right_front_gap_m"], facts["right_front_speed_mps"]
        return gap is not None and gap < 30.0 and 0 <= speed < self.style.cruise_speed - 1.0

    def _idm(self, facts: dict[str, Any], free_accel: float) -> float:
        """The Intelligent Driver Model's acceleration: ``free_accel`` minus the interaction
        with the car ahead (if any), clipped to [-MAX_DECEL, max_accel]."""
        style, speed = self.style, facts["ego_speed_mps"]
        accel = free_accel
        if facts["lead_present"]:
            closing = facts["closing_speed_mps"]
            desired = style.min_gap + max(
                0.0,
                speed * style.time_headway + speed * closing / (2 * math.sqrt(style.max_accel * style.comfort_decel)),
            )
            accel -= style.max_accel * (desired / max(facts["gap_m"], 0.5)) ** 2
        return float(np.clip(accel, -MAX_DECEL, style.max_accel))

    def _stop_at(self, distance: float, speed: float) -> float | None:
        """The deceleration that stops the car in ``distance`` metres (None when that would
        need more than MAX_DECEL: too late to stop, carry on)."""
        if distance <= 0.5:
            return -MAX_DECEL if speed < 3.0 else None
        needed = -speed * speed / (2 * distance)
        return needed if needed >= -MAX_DECEL else None

    def _right_lane_clear(self, facts: dict[str, Any]) -> bool:
        """The right lane has no car within 4 s at our speed, or only one at least as fast as we want to go."""
        gap, front_speed = facts["right_front_gap_m"], facts["right_front_speed_mps"]
        if gap is None:
            return True
        return gap > 4.0 * max(facts["ego_speed_mps"], 5.0) or front_speed >= self.style.cruise_speed - 1.0

    def _command(self, speed: float, acceleration: float, lane_change: int, cause: str) -> Command:
        """A command for ``acceleration`` over the next period, from ``speed``."""
        return Command(
            acceleration=float(acceleration),
            target_speed=self._target(speed, acceleration),
            lane_change=lane_change,
            cause=cause,
        )

    def _target(self, speed: float, acceleration: float) -> float:
        """The target speed that changes the speed by ``a * T`` over the period ``T``: the car's
        speed controller is proportional (time constant ``tau``), hence
        ``v + a * T / (1 - exp(-T / tau))``, at least 0."""
        gain = self.period / (1 - math.exp(-self.period / ControlledVehicle.TAU_ACC))
        return max(0.0, speed + acceleration * gain)
