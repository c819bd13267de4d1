"""Does the camera show the car the driver reacts to?

The scripted driver follows the car ahead up to ``annotate.PERCEPTION_M`` (100 m) away; the
frame shows ``view_m * (1 - centering[0])`` metres ahead of the ego car. A label caused by a car
beyond the frame's edge ("a slower car 65 m ahead") cannot be read from the clip. For each
sample of a simulated dataset in the generic format this counts, per road scenario (where the
ego car drives towards the right edge of the frame), the samples whose car ahead is out of the
frame, and the actions of those samples. Intersection and roundabout are skipped: the ego car
turns there, so "ahead" is not one frame edge. Prints JSON.

    python benchmarks/driving_camera_coverage.py DATA_DIR

``DATA_DIR`` is a folder of ``samples.jsonl`` written by the simulator (e.g. a split of
``vfm finetune driving``'s data cache). The cameras are those of the installed
``scenarios.py``: run it on data that the same version generated.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter, defaultdict

from vfm.plugins.driving.loaders import load_generic
from vfm.plugins.driving.scenarios import get_scenario

ROAD_SCENARIOS = ("highway", "merge", "on_ramp", "two_way")
"""Scenarios whose ego car drives along the frame's x axis, towards the right edge."""

EGO_HALF_LENGTH_M = 2.5
"""From the ego car's centre (where the camera is centred) to its front bumper."""


def visible_ahead_m(scenario: str) -> float:
    """Metres of road the frame shows ahead of the ego car's front bumper."""
    spec = get_scenario(scenario)
    return spec.view_m * (1.0 - spec.centering[0]) - EGO_HALF_LENGTH_M


def coverage(samples) -> dict:
    """``{scenario: {samples, lead_present, lead_out_of_view, share_out_of_view, visible_ahead_m,
    actions}}`` for each road scenario, and ``all`` over them."""
    counts: dict[str, Counter] = defaultdict(lambda: Counter(samples=0, lead_present=0, lead_out_of_view=0))
    actions: dict[str, Counter] = defaultdict(Counter)
    for sample in samples:
        if sample.scenario not in ROAD_SCENARIOS:
            continue
        for key in (sample.scenario, "all"):
            counts[key]["samples"] += 1
            if sample.facts.get("lead_present"):
                counts[key]["lead_present"] += 1
                if sample.facts["gap_m"] > visible_ahead_m(sample.scenario):
                    counts[key]["lead_out_of_view"] += 1
                    actions[key][sample.action] += 1
    return {
        key: {
            **c,
            "share_out_of_view": round(c["lead_out_of_view"] / c["samples"], 4),
            "visible_ahead_m": None if key == "all" else visible_ahead_m(key),
            "actions": dict(actions[key].most_common()),
        }
        for key, c in sorted(counts.items())
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", help="a folder of samples.jsonl written by the driving simulator")
    args = parser.parse_args()
    print(json.dumps(coverage(load_generic(args.data)), indent=1))


if __name__ == "__main__":
    main()
