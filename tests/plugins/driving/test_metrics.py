"""Driving scores: action/cause parsed from generated sentences, QA by exact match and by meaning."""

from __future__ import annotations

import math

import pytest

from vfm.plugins.driving.metrics import commentary_metrics, normalise_answer, qa_metrics, question_kind
from vfm.plugins.driving.records import DrivingSample


def labelled(action, cause, text):
    return DrivingSample(
        id=text, scenario="highway", frames=None, ego_speed=math.nan, action=action, cause=cause, commentary=text
    )


def test_action_and_cause_are_parsed_from_the_sentence():
    samples = [
        labelled("slow_down", "slower_lead_vehicle", "Slowing down: the car ahead is slower."),
        labelled("keep_speed", "target_speed_reached", "Keeping our speed: we are at the target speed."),
        labelled("accelerate", "free_road", "Speeding up because the lane ahead is open."),
    ]
    said = [
        "Easing off as the car ahead is slower, at 70 km/h.",  # another phrasing, same meaning
        "Slowing down since the gap to the car ahead is down to 5 m.",  # wrong action and cause
        "Hmm.",
    ]  # states nothing
    scores = commentary_metrics(said, samples)
    assert scores["action"]["accuracy"] == pytest.approx(1 / 3) and scores["cause"]["accuracy"] == pytest.approx(1 / 3)
    assert scores["action"]["unparsed"] == 1 and scores["action"]["per_class_recall"]["slow_down"] == 1.0
    assert scores["action"]["balanced_accuracy"] == pytest.approx(1 / 3)
    assert scores["action"]["confusion"] == {
        "accelerate": {"unparsed": 1},
        "keep_speed": {"slow_down": 1},
        "slow_down": {"slow_down": 1},
    }
    assert set(scores["caption"]) >= {"bleu_4", "cider"}


def test_qa_scores_free_answers_by_meaning_and_the_rest_by_exact_match():
    questions = [
        "What are you doing?",
        "Why are you braking?",
        "How far away is the car in front?",
        "What are you doing?",
        "Why are you braking?",
    ]
    references = [
        "Easing off.",
        "Because we are following a slower car 66 m ahead.",
        "66 m.",
        "Speeding up.",
        "Because the gap to the car ahead is down to 5 m.",
    ]
    predicted = [
        "Slowing down.",
        "Because a slower vehicle is ahead in our lane.",
        "66 M",
        "Keeping our speed.",
        "Because we are following a slower car 12 m ahead.",
    ]
    scores = qa_metrics(predicted, questions, references)
    assert scores["accuracy"] == pytest.approx(1 / 5)  # only "66 M" matches exactly
    assert scores["meaning_accuracy"] == pytest.approx(3 / 5)  # + the same action, + the same cause
    assert scores["per_kind"]["action"] == {"accuracy": 0.0, "count": 2, "meaning_accuracy": 0.5}
    assert scores["per_kind"]["why"] == {"accuracy": 0.0, "count": 2, "meaning_accuracy": 0.5}
    assert "meaning_accuracy" not in scores["per_kind"]["gap"]
    assert qa_metrics([], [], [])["accuracy"] is None


def test_answer_normalisation_and_question_kinds():
    assert normalise_answer("Yes, it's  safe.") == "yes it's safe" and normalise_answer("21.9 m/s") == "21.9 m s"
    assert question_kind("why are you slowing down?") == "why" and question_kind("Is it raining?") == "other"
