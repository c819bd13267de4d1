"""Facts from the simulator state, the scripted policy, and the (action, cause) labels."""

from __future__ import annotations

import pytest

from vfm.plugins.driving.annotate import VALID_PAIRS, consistency_errors, label
from vfm.plugins.driving.policy import Command, DriverStyle, ScriptedDriver
from vfm.plugins.driving.records import ACTIONS, CAUSES
from vfm.plugins.driving.scenarios import SCENARIOS
from vfm.plugins.driving.simulate import generate

FREE = {
    "ego_speed_mps": 20.0,
    "lane_id": 1,
    "lanes_on_road": 3,
    "lane_changing": False,
    "crashed": False,
    "on_ramp": False,
    "oncoming_gap_m": None,
    "lead_present": False,
    "gap_m": None,
    "lead_speed_mps": None,
    "closing_speed_mps": None,
    "time_headway_s": None,
    "ttc_s": None,
    "lead_cut_in": False,
    "lead_from_ramp": False,
    "vehicles_ahead": 0,
    "vehicles_ahead_in_lane": 0,
    "left_lane_exists": True,
    "left_lane_free": True,
    "left_front_gap_m": None,
    "left_rear_gap_m": None,
    "left_front_speed_mps": None,
    "right_lane_exists": True,
    "right_lane_free": False,
    "right_front_gap_m": None,
    "right_rear_gap_m": 5.0,
    "right_front_speed_mps": None,
    "lane_end_m": None,
    "merging_vehicle": False,
    "merging_gap_m": None,
    "in_junction": False,
    "distance_to_stop_m": None,
    "crossing_vehicles": 0,
    "crossing_gap_m": None,
    "must_yield": False,
}


def driver(scenario="highway", cruise=25.0):
    return ScriptedDriver(SCENARIOS[scenario], DriverStyle(cruise_speed=cruise, overtake_margin=2.0))


def decide(scenario="highway", **changes):
    facts = {**FREE, **changes}
    command = driver(scenario).decide(facts)
    action, cause = label(command, facts)
    assert consistency_errors(action, cause, facts) == []
    return action, cause


def test_free_road_accelerates_then_holds_the_cruise_speed():
    assert decide(ego_speed_mps=15.0) == ("accelerate", "free_road")
    assert decide(ego_speed_mps=25.0) == ("keep_speed", "target_speed_reached")


def test_following_overtaking_and_blocked_lanes():
    slow_lead = dict(lead_present=True, gap_m=25.0, lead_speed_mps=15.0, closing_speed_mps=5.0)
    assert decide(**slow_lead) == ("change_lane_left", "free_lane_to_overtake")
    assert decide(**slow_lead, left_lane_free=False)[1] == "lane_blocked"
    assert decide(**slow_lead, left_lane_exists=False, left_lane_free=False) == ("slow_down", "slower_lead_vehicle")
    assert decide(**{**slow_lead, "gap_m": 6.0}, left_lane_free=False, left_lane_exists=False) == (
        "slow_down",
        "close_lead_vehicle",
    )
    assert decide(**slow_lead, left_lane_free=False, lead_cut_in=True) == ("slow_down", "cut_in")
    assert decide(
        ego_speed_mps=1.0, lead_present=True, gap_m=3.0, lead_speed_mps=0.0, closing_speed_mps=1.0, left_lane_free=False
    ) == ("stop", "close_lead_vehicle")


def test_keep_right_merges_and_lane_ends():
    assert decide(ego_speed_mps=25.0, right_lane_free=True) == ("change_lane_right", "free_road")
    assert decide(merging_vehicle=True, merging_gap_m=10.0, right_lane_exists=False) == (
        "change_lane_left",
        "merging_vehicle",
    )
    assert decide(merging_vehicle=True, merging_gap_m=10.0, right_lane_exists=False, left_lane_free=False) == (
        "slow_down",
        "merging_vehicle",
    )
    ramp = dict(on_ramp=True, lane_end_m=60.0, right_lane_exists=False, right_lane_free=False)
    assert decide("on_ramp", **ramp) == ("change_lane_left", "end_of_lane")
    assert decide("on_ramp", **ramp, left_lane_free=False) == ("slow_down", "end_of_lane")
    assert decide("on_ramp", **{**ramp, "lane_end_m": 10.0}, ego_speed_mps=0.0, left_lane_free=False) == (
        "stop",
        "end_of_lane",
    )


def test_junctions_yield_then_stop_for_crossing_traffic():
    crossing = dict(
        must_yield=True,
        crossing_vehicles=1,
        crossing_gap_m=20.0,
        left_lane_exists=False,
        left_lane_free=False,
        right_lane_exists=False,
    )
    assert decide("intersection", ego_speed_mps=8.0, distance_to_stop_m=25.0, **crossing) == (
        "yield",
        "crossing_traffic",
    )
    assert decide("intersection", ego_speed_mps=0.3, distance_to_stop_m=1.0, **crossing) == ("stop", "crossing_traffic")


def test_label_thresholds():
    facts = dict(FREE)
    assert label(Command(0.2, 20.2, 0, "target_speed_reached"), facts)[0] == "keep_speed"
    assert label(Command(-2.0, 0.0, 0, "close_lead_vehicle"), facts)[0] == "stop"
    assert label(Command(-1.0, 3.0, 0, "crossing_traffic"), facts)[0] == "yield"
    assert label(Command(0.0, 20.0, -1, "free_lane_to_overtake"), facts)[0] == "change_lane_left"


def test_consistency_errors_catch_bad_labels():
    assert consistency_errors("accelerate", "cut_in", FREE)  # not a valid pair
    assert consistency_errors("change_lane_right", "free_road", FREE)  # right lane not free
    assert consistency_errors("slow_down", "close_lead_vehicle", FREE)  # no car ahead
    assert consistency_errors("stop", "crossing_traffic", FREE)  # nothing crossing
    assert consistency_errors("keep_speed", "target_speed_reached", FREE) == []
    assert set(VALID_PAIRS) == set(ACTIONS)


@pytest.fixture(scope="module")
def simulated():
    return generate(6, list(SCENARIOS), seed=20, clip_length=1, frame_size=16, steps_per_episode=14, supersample=1)


def test_simulated_labels_agree_with_their_facts(simulated):
    for sample in simulated:
        facts = sample.facts
        assert consistency_errors(sample.action, sample.cause, facts) == []
        if facts["lead_present"]:
            assert facts["gap_m"] >= 0 and facts["closing_speed_mps"] == pytest.approx(
                facts["ego_speed_mps"] - facts["lead_speed_mps"], abs=0.02
            )
        if sample.action == "accelerate":
            assert facts["target_speed_mps"] > facts["ego_speed_mps"]
        if sample.action == "slow_down":
            assert facts["target_speed_mps"] < facts["ego_speed_mps"]
        if sample.action == "stop":
            assert facts["target_speed_mps"] <= 0.5
        assert facts["vehicles_ahead_in_lane"] <= facts["vehicles_ahead"]
    assert len({s.action for s in simulated}) >= 5 and len({s.cause for s in simulated}) >= 6
    assert {s.cause for s in simulated} <= set(CAUSES)
