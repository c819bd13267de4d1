"""Commentary and QA generation, and parse_commentary's round trip over every phrasing."""

from __future__ import annotations

import random

import pytest

from vfm.plugins.driving.annotate import VALID_PAIRS
from vfm.plugins.driving.commentary import (
    ACTION_PHRASES,
    CAUSE_PHRASES,
    CONNECTORS,
    QUESTIONS,
    commentary,
    parse_commentary,
    qa_pairs,
)

FACTS = {
    "ego_speed_mps": 20.0,
    "gap_m": 37.4,
    "lead_speed_mps": 0.3,
    "closing_speed_mps": 19.7,
    "cruise_speed_mps": 27.0,
    "lane_end_m": 85.0,
    "crossing_vehicles": 2,
    "left_lane_exists": True,
    "left_lane_free": False,
    "left_front_gap_m": 12.0,
    "left_rear_gap_m": 30.0,
    "right_lane_exists": False,
    "right_lane_free": False,
    "vehicles_ahead": 3,
    "distance_to_stop_m": 12.0,
    "in_junction": False,
}


def test_parse_recovers_every_template_variant():
    for action, causes in VALID_PAIRS.items():
        for cause in causes:
            seen = set()
            for seed in range(200):
                text = commentary(action, cause, FACTS, random.Random(seed))
                seen.add(text)
                assert parse_commentary(text) == (action, cause), text
            for action_phrase in ACTION_PHRASES[action]:  # every action phrase with every connector
                for connector in CONNECTORS:
                    for cause_phrase in CAUSE_PHRASES[cause]:
                        text = (
                            action_phrase
                            + connector
                            + cause_phrase.format(
                                cruise_kmh="97", lead_kmh="54", gap="12", lane_end="80", crossing="2 cars", side="left"
                            )
                            + ", and the left lane is blocked."
                        )
                        assert parse_commentary(text) == (action, cause), text
            assert len(seen) >= 6  # phrasing varies


def test_example_sentence_and_paraphrases():
    assert parse_commentary("Slowing down: the car ahead is 37 m away and closing, and the left lane is blocked.") == (
        "slow_down",
        "slower_lead_vehicle",
    )
    assert parse_commentary("I am braking hard because a car cut in.") == ("slow_down", "cut_in")
    assert parse_commentary("We stop as traffic has priority at the junction") == ("stop", "crossing_traffic")
    assert parse_commentary("The weather is nice.") == (None, None)


def test_commentary_numbers_come_from_the_facts():
    rng = random.Random(1)
    texts = {commentary("slow_down", "close_lead_vehicle", FACTS, rng) for _ in range(50)}
    assert any("37 m" in text for text in texts)
    assert all("None" not in text for text in texts)
    without_lead = {**FACTS, "gap_m": None, "lead_speed_mps": None}
    assert all(
        "m away" not in commentary("keep_speed", "slower_lead_vehicle", without_lead, random.Random(s))
        for s in range(30)
    )
    with pytest.raises(ValueError):
        commentary("fly", "free_road", FACTS, rng)


def test_qa_answers_follow_the_facts():
    pairs = {
        pair.question: pair.answer for pair in qa_pairs("slow_down", "slower_lead_vehicle", FACTS, random.Random(0))
    }
    assert parse_commentary(pairs[QUESTIONS["action"]])[0] == "slow_down"
    assert parse_commentary("Slowing down: " + pairs["Why are you braking?"].removeprefix("Because "))[1] == (
        "slower_lead_vehicle"
    )
    assert pairs[QUESTIONS["left"]] == "No, the left lane is occupied: a car is 12 m ahead in it."
    assert pairs[QUESTIONS["right"]] == "No, there is no lane to our right."
    assert pairs[QUESTIONS["ahead"]] == "3 vehicles within 60 m ahead."
    assert pairs[QUESTIONS["speed"]] == "72 km/h (20.0 m/s)."
    assert pairs[QUESTIONS["gap"]] == "37 m."
    assert pairs[QUESTIONS["crossing"]] == "Yes, 2 vehicles with priority."
    free = {**FACTS, "left_lane_free": True, "vehicles_ahead": 0, "distance_to_stop_m": None}
    pairs = {p.question: p.answer for p in qa_pairs("keep_speed", "target_speed_reached", free, random.Random(0))}
    assert pairs[QUESTIONS["left"]] == "Yes, the left lane is clear."
    assert pairs[QUESTIONS["ahead"]] == "None within 60 m."
    assert QUESTIONS["crossing"] not in pairs


def test_same_rng_seed_same_text():
    first = commentary("yield", "crossing_traffic", FACTS, random.Random("x-1"))
    assert first == commentary("yield", "crossing_traffic", FACTS, random.Random("x-1"))
