"""Commentary sentences and question-answer pairs from (action, cause, facts), and the inverse
:func:`parse_commentary`, which scores a model's generated commentary.

A commentary is ``<action clause><connector><cause clause>[<context>].``, e.g.
``"Slowing down: the car ahead is 37 m away and closing, and the left lane is blocked."``.
Every clause comes from the phrase banks below (several phrasings each, numbers from the
facts), chosen by a seeded ``random.Random`` so the same sample always gets the same text.

:func:`parse_commentary` is built from the same banks: each phrasing becomes a regular
expression (numbers and sides as wildcards); the action is the earliest action phrase in the
text, the cause the earliest cause phrase after it (the context clause comes last, so it never
wins). Text no phrasing matches falls back to keyword rules, so paraphrases still score.
"""

from __future__ import annotations

import random
import re
from typing import Any

from vfm.plugins.driving.records import ACTIONS, CAUSES, QAPair

ACTION_PHRASES: dict[str, tuple[str, ...]] = {
    "accelerate": ("Speeding up", "Accelerating", "Picking up speed", "Building up speed"),
    "keep_speed": ("Keeping our speed", "Holding a steady speed", "Maintaining speed", "Cruising at a constant speed"),
    "slow_down": ("Slowing down", "Easing off", "Braking gently", "Reducing speed"),
    "stop": ("Stopping", "Coming to a stop", "Bringing the car to a halt", "Staying stopped"),
    "yield": ("Giving way", "Yielding", "Holding back to give way", "Letting the other traffic go first"),
    "change_lane_left": (
        "Changing lanes to the left",
        "Moving into the left lane",
        "Pulling out to the left",
        "Switching to the left lane",
    ),
    "change_lane_right": (
        "Changing lanes to the right",
        "Moving into the right lane",
        "Pulling back to the right",
        "Switching to the right lane",
    ),
}
"""How each action is said (the start of a commentary, and the answer to "What are you doing?")."""

CAUSE_PHRASES: dict[str, tuple[str, ...]] = {
    "free_road": (
        "the road ahead is clear",
        "there is nothing in front of us",
        "the lane ahead is open",
        "nothing is holding us back",
    ),
    "target_speed_reached": (
        "we are at our cruising speed of {cruise_kmh} km/h",
        "we have reached the speed we want",
        "we are already at our target speed",
    ),
    "slower_lead_vehicle": (
        "the car ahead is slower, at {lead_kmh} km/h",
        "we are following a slower car {gap} m ahead",
        "the car ahead is {gap} m away and closing",
        "a slower vehicle is ahead in our lane",
    ),
    "close_lead_vehicle": (
        "the car in front is only {gap} m away",
        "we are too close to the car ahead ({gap} m)",
        "the gap to the car ahead is down to {gap} m",
        "the car ahead is stopped {gap} m away",
    ),
    "cut_in": (
        "a car cut in front of us",
        "a vehicle just moved into our lane {gap} m ahead",
        "someone pulled into our lane ahead",
    ),
    "merging_vehicle": (
        "a car is merging from the on-ramp",
        "traffic is joining from the slip road",
        "a vehicle from the ramp is moving into our lane",
    ),
    "crossing_traffic": (
        "{crossing} with priority is crossing our path",
        "traffic is coming through the junction",
        "another car has right of way here",
    ),
    "free_lane_to_overtake": (
        "the {side} lane is free to pass the slower car",
        "there is room to overtake on the {side}",
        "the {side} lane is clear for overtaking",
    ),
    "lane_blocked": (
        "the {side} lane is blocked",
        "a car in the {side} lane stops us changing lanes",
        "the {side} lane is occupied",
    ),
    "end_of_lane": ("our lane ends in {lane_end} m", "the on-ramp is running out", "our lane ends ahead"),
}
"""How each cause is said; ``{...}`` are filled from the facts (see :func:`_slots`)."""

CONNECTORS = (": ", " because ", " as ", " since ", " - ")

QUESTIONS = {
    "action": "What are you doing?",
    "left": "Is it safe to change lanes to the left?",
    "right": "Is it safe to change lanes to the right?",
    "ahead": "How many vehicles are ahead?",
    "speed": "How fast are we going?",
    "gap": "How far away is the car in front?",
    "crossing": "Is any traffic crossing our path?",
}
"""The fixed questions (plus "Why are you <doing this>?", worded per action: :data:`WHY_GERUNDS`)."""

WHY_GERUNDS = {
    "accelerate": "speeding up",
    "keep_speed": "keeping this speed",
    "slow_down": "braking",
    "stop": "stopping",
    "yield": "giving way",
    "change_lane_left": "changing lanes to the left",
    "change_lane_right": "changing lanes to the right",
}

_CAUSE_KEYWORDS: tuple[tuple[str, str], ...] = (
    (r"cut(?:s|ting)? in|pulled into our lane|moved into our lane", "cut_in"),
    (r"merg|on-ramp|slip road|joining", "merging_vehicle"),
    (r"cross|right of way|priority|junction|roundabout|intersection", "crossing_traffic"),
    (r"lane ends|end of (?:the|our) lane|running out", "end_of_lane"),
    (r"overtak|to pass\b", "free_lane_to_overtake"),
    (r"blocked|occupied", "lane_blocked"),
    (r"too close|only \d|stopped|gap", "close_lead_vehicle"),
    (r"slower|following", "slower_lead_vehicle"),
    (r"target speed|cruising speed|speed we want", "target_speed_reached"),
    (r"clear|open|nothing", "free_road"),
)
"""Fallback cause keywords for text no phrasing matches (first match wins)."""

_ACTION_KEYWORDS: tuple[tuple[str, str], ...] = (
    (r"\bleft lane\b|to the left", "change_lane_left"),
    (r"\bright lane\b|to the right", "change_lane_right"),
    (r"give way|giving way|yield", "yield"),
    (r"\bstop|\bhalt|standstill", "stop"),
    (r"slow|brak|decelerat|reduc", "slow_down"),
    (r"accelerat|speed(?:ing)? up|pick", "accelerate"),
    (r"keep|hold|maintain|steady|constant|cruis", "keep_speed"),
)
"""Fallback action keywords for text no phrasing matches (first match wins)."""


def _kmh(mps: float | None) -> str:
    return "0" if mps is None else str(round(mps * 3.6))


def _slots(action: str, cause: str, facts: dict[str, Any]) -> dict[str, str]:
    """The values the ``{...}`` placeholders are filled with."""
    crossing = facts.get("crossing_vehicles") or 1
    blocked_side = "left" if facts.get("left_lane_exists") and not facts.get("left_lane_free") else "right"
    return {
        "cruise_kmh": _kmh(facts.get("cruise_speed_mps")),
        "lead_kmh": _kmh(facts.get("lead_speed_mps")),
        "gap": str(round(facts.get("gap_m") or 0)),
        "lane_end": str(round(facts.get("lane_end_m") or 0)),
        "crossing": "a car" if crossing == 1 else f"{crossing} cars",
        "side": {"change_lane_left": "left", "change_lane_right": "right"}.get(action, blocked_side),
    }


def _phrasings(cause: str, facts: dict[str, Any]) -> tuple[str, ...]:
    """The cause phrasings that are true for these facts (a number must exist to be said)."""
    options = []
    for phrase in CAUSE_PHRASES[cause]:
        if "{gap}" in phrase and facts.get("gap_m") is None:
            continue
        if "{lead_kmh}" in phrase and facts.get("lead_speed_mps") is None:
            continue
        if "{lane_end}" in phrase and facts.get("lane_end_m") is None:
            continue
        if "{cruise_kmh}" in phrase and facts.get("cruise_speed_mps") is None:
            continue
        if "and closing" in phrase and (facts.get("closing_speed_mps") or 0) <= 0.5:
            continue
        if "is stopped" in phrase and (facts.get("lead_speed_mps") is None or facts["lead_speed_mps"] > 0.5):
            continue
        options.append(phrase)
    return tuple(options) or tuple(p for p in CAUSE_PHRASES[cause] if "{" not in p)


def cause_clause(action: str, cause: str, facts: dict[str, Any], rng: random.Random) -> str:
    """One phrasing of ``cause`` (lower case, no final full stop)."""
    return rng.choice(_phrasings(cause, facts)).format(**_slots(action, cause, facts))


def _context(action: str, cause: str, facts: dict[str, Any]) -> str:
    """A trailing remark on the left lane when we follow a car and cannot pass on the left."""
    if (
        cause in ("slower_lead_vehicle", "close_lead_vehicle")
        and facts.get("left_lane_exists")
        and not facts.get("left_lane_free")
        and action in ("slow_down", "keep_speed")
    ):
        return ", and the left lane is blocked"
    return ""


def commentary(action: str, cause: str, facts: dict[str, Any], rng: random.Random) -> str:
    """One commentary sentence, e.g. ``"Slowing down: the car ahead is 37 m away and closing."``."""
    if action not in ACTIONS or cause not in CAUSES:
        raise ValueError(f"unknown label ({action}, {cause})")
    text = rng.choice(ACTION_PHRASES[action]) + rng.choice(CONNECTORS) + cause_clause(action, cause, facts, rng)
    if rng.random() < 0.5:
        text += _context(action, cause, facts)
    return text + "."


def _lane_answer(side: str, facts: dict[str, Any]) -> str:
    if not facts.get(f"{side}_lane_exists"):
        return f"No, there is no lane to our {side}."
    if facts.get(f"{side}_lane_free"):
        return f"Yes, the {side} lane is clear."
    rear, front = facts.get(f"{side}_rear_gap_m"), facts.get(f"{side}_front_gap_m")
    where = (
        f"a car is {round(front)} m ahead in it"
        if front is not None and (rear is None or front <= rear)
        else f"a car is {round(rear)} m behind in it"
        if rear is not None
        else "a car is next to us"
    )
    return f"No, the {side} lane is occupied: {where}."


def qa_pairs(action: str, cause: str, facts: dict[str, Any], rng: random.Random) -> list[QAPair]:
    """Question-answer pairs about this step: what we do, why, whether each lane change is
    safe, how many vehicles are ahead, our speed, the gap ahead, and crossing traffic (at a junction)."""
    speed = facts.get("ego_speed_mps") or 0.0
    ahead = facts.get("vehicles_ahead", 0)
    pairs = [
        QAPair(QUESTIONS["action"], rng.choice(ACTION_PHRASES[action]) + "."),
        QAPair(f"Why are you {WHY_GERUNDS[action]}?", "Because " + cause_clause(action, cause, facts, rng) + "."),
        QAPair(QUESTIONS["left"], _lane_answer("left", facts)),
        QAPair(QUESTIONS["right"], _lane_answer("right", facts)),
        QAPair(
            QUESTIONS["ahead"],
            "None within 60 m." if ahead == 0 else f"{ahead} vehicle{'s' if ahead > 1 else ''} within 60 m ahead.",
        ),
        QAPair(QUESTIONS["speed"], f"{_kmh(speed)} km/h ({speed:.1f} m/s)."),
        QAPair(
            QUESTIONS["gap"],
            "There is no car ahead in our lane within 100 m."
            if facts.get("gap_m") is None
            else f"{round(facts['gap_m'])} m.",
        ),
    ]
    if facts.get("distance_to_stop_m") is not None or facts.get("in_junction"):
        count = facts.get("crossing_vehicles", 0)
        pairs.append(
            QAPair(
                QUESTIONS["crossing"],
                "No, our path is clear."
                if not count
                else f"Yes, {count} vehicle{'s' if count > 1 else ''} with priority.",
            )
        )
    return pairs


def _pattern(phrase: str) -> str:
    """A phrasing as a regular expression: literal words, ``{...}`` as a number or a side."""
    parts = re.split(r"(\{\w+\})", phrase)
    out = []
    for part in parts:
        if part == "{side}":
            out.append(r"(?:left|right)")
        elif part == "{crossing}":
            out.append(r"(?:a car|\d+ cars)")
        elif part.startswith("{"):
            out.append(r"-?\d+(?:\.\d+)?")
        else:
            out.append(re.escape(part))
    return "".join(out)


def _compile(bank: dict[str, tuple[str, ...]]) -> list[tuple[re.Pattern, str]]:
    return [
        (re.compile(_pattern(phrase), re.IGNORECASE), label) for label, phrases in bank.items() for phrase in phrases
    ]


_ACTION_RES = _compile(ACTION_PHRASES)
_CONNECTOR = re.compile(r":|\bbecause\b|\bas\b|\bsince\b| - ", re.IGNORECASE)
_CAUSE_RES = _compile(CAUSE_PHRASES)


def _earliest(text: str, patterns: list[tuple[re.Pattern, str]], start: int = 0) -> tuple[str | None, int]:
    """The label of the earliest (then longest) match at or after ``start``, and where it ends."""
    best = None
    for pattern, name in patterns:
        match = pattern.search(text, start)
        if match and (best is None or (match.start(), -match.end()) < (best[0].start(), -best[0].end())):
            best = (match, name)
    return (best[1], best[0].end()) if best else (None, start)


def _keyword(text: str, rules: tuple[tuple[str, str], ...]) -> str | None:
    for pattern, name in rules:
        if re.search(pattern, text, re.IGNORECASE):
            return name
    return None


def parse_commentary(text: str) -> tuple[str | None, str | None]:
    """The (action, cause) a commentary states; ``None`` for what it does not state.

    Exact phrasings first (action: earliest action phrase; cause: earliest cause phrase after
    it), then keyword rules on the rest of the text (on the part before a connector for the
    action, after it for the cause)."""
    action, end = _earliest(text, _ACTION_RES)
    cause, _ = _earliest(text, _CAUSE_RES, end)
    if action is None:
        split = _CONNECTOR.search(text)
        head, end = (text[: split.start()], split.end()) if split else (text, 0)
        action = _keyword(head, _ACTION_KEYWORDS)
    if cause is None:
        cause = _keyword(text[end:], _CAUSE_KEYWORDS)
    return action, cause
