"""How much of a simulated driving label the scene decides, and how much the driver's hidden style.

The scripted driver (:mod:`vfm.plugins.driving.policy`) decides from the scene facts *and* the
episode's driver style (cruise speed, time headway, overtaking margin; ``DriverStyle.draw``).
The clip shows the scene and the speed trace; the cruise speed and time headway are the
driver's settings (``DrivingSample.set_speed``, ``set_time_gap``), which the model reads when
the car reports them; the overtaking margin is never shown. For each sample of a simulated
dataset in the generic format this re-runs the policy on the stored facts:

1. with the episode's own style: it must give the stored (action, cause) back (``reproduced``;
   anything below 1.0 means the stored facts are incomplete);
2. with ``--styles`` other styles drawn from the scenario's prior (``settings_unknown``), and
   with other styles that keep the episode's cruise speed and time headway, so only the
   overtaking margin differs (``settings_known``), giving per label:

   - ``agreement``: the share of those other drivers that would do the same in the same scene;
   - ``scene_determined``: the share of samples where all of them agree with the label;
   - ``majority_accuracy``: the accuracy of the label most of them choose (the best guess
     from the scene alone, under the prior).

``majority_accuracy`` is not a ceiling for a clip model: the speed trace shows how the car has
been driving, and so part of its style. It says how far the scene at the decision step alone
takes a model.

3. ``perception_noise``: with the episode's own style, the facts a model has to read from the
   frames (distances to other cars and to the end of the lane or the stop line, the other
   cars' speeds; the closing speed follows from the noisy lead speed and our own exact speed)
   are perturbed by Gaussian errors of ``--noise`` standard deviations ("metres/m/s", several),
   ``--draws`` times per sample. ``agreement`` is then the accuracy of a model that applies
   the driver's rules exactly but reads the scene that precisely: how precise perception has
   to be for a target accuracy. Yes/no facts (a lane free, a cut-in) stay exact, so these are
   upper bounds.

Prints JSON (overall and per true label).

    python benchmarks/driving_label_ambiguity.py DATA_DIR [--styles 50] [--noise 0.5/0.25 1/0.5 2/1] [--draws 20]

``DATA_DIR`` is a folder of ``samples.jsonl`` written by the simulator (e.g. a split of
``vfm finetune driving``'s data cache); samples without a seed (real data) are skipped.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter, defaultdict
from dataclasses import replace

import numpy as np

from vfm.plugins.driving.annotate import label
from vfm.plugins.driving.loaders import load_generic
from vfm.plugins.driving.policy import DriverStyle, ScriptedDriver
from vfm.plugins.driving.scenarios import get_scenario

OTHER_SEEDS = 7_000_000
"""Other drivers' styles are drawn with seeds from here on (no dataset episode uses them)."""


def decided(sample, style: DriverStyle) -> tuple[str, str]:
    """The (action, cause) a driver of ``style`` chooses in the sample's stored scene."""
    return label(ScriptedDriver(get_scenario(sample.scenario), style).decide(sample.facts), sample.facts)


def other_labels(sample, styles: int, keep_settings: bool) -> list[tuple[str, str]]:
    """The labels of ``styles`` other drivers in the sample's stored scene; with ``keep_settings``
    they have the episode's cruise speed and time headway."""
    spec = get_scenario(sample.scenario)
    own = DriverStyle.draw(spec, sample.seed)
    kept = {"cruise_speed": own.cruise_speed, "time_headway": own.time_headway} if keep_settings else {}
    return [decided(sample, replace(DriverStyle.draw(spec, OTHER_SEEDS + i), **kept)) for i in range(styles)]


DISTANCE_FACTS = ("gap_m", "merging_gap_m", "lane_end_m", "distance_to_stop_m", "oncoming_gap_m", "right_front_gap_m")
"""Distances the policy reads that a model has to judge from the frames (metres)."""
SPEED_FACTS = ("lead_speed_mps", "right_front_speed_mps")
"""Other cars' speeds the policy reads (m/s); the closing speed follows from the lead's."""


def perceived(facts: dict, rng: np.random.Generator, sd_distance: float, sd_speed: float) -> dict:
    """``facts`` as read with Gaussian errors: distances (sd ``sd_distance`` m, at least 0) and the
    other cars' speeds (sd ``sd_speed`` m/s, at least 0); ``closing_speed_mps`` = our exact speed
    minus the lead's read speed. Absent (None) facts stay absent."""
    read = dict(facts)
    for key in DISTANCE_FACTS:
        if read.get(key) is not None:
            read[key] = max(0.0, read[key] + rng.normal(0.0, sd_distance))
    for key in SPEED_FACTS:
        if read.get(key) is not None:
            read[key] = max(0.0, read[key] + rng.normal(0.0, sd_speed))
    if read.get("lead_speed_mps") is not None:
        read["closing_speed_mps"] = read["ego_speed_mps"] - read["lead_speed_mps"]
    return read


def noisy_labels(
    sample, rng: np.random.Generator, draws: int, sd_distance: float, sd_speed: float
) -> list[tuple[str, str]]:
    """The episode's own driver's labels on ``draws`` noisy readings of the sample's scene."""
    scenario = get_scenario(sample.scenario)
    driver = ScriptedDriver(scenario, DriverStyle.draw(scenario, sample.seed))
    labels = []
    for _ in range(draws):
        facts = perceived(sample.facts, rng, sd_distance, sd_speed)
        labels.append(label(driver.decide(facts), facts))
    return labels


def summarise(rows: list[tuple[str, list[str]]]) -> dict:
    """rows: (true label, the other drivers' labels) -> the three shares, overall and per true label."""

    def shares(part):
        agreement = [np.mean([o == gold for o in others]) for gold, others in part]
        majority = [Counter(others).most_common(1)[0][0] == gold for gold, others in part]
        return {
            "agreement": round(float(np.mean(agreement)), 4),
            "scene_determined": round(float(np.mean([a == 1.0 for a in agreement])), 4),
            "majority_accuracy": round(float(np.mean(majority)), 4),
            "count": len(part),
        }

    by_label = defaultdict(list)
    for row in rows:
        by_label[row[0]].append(row)
    return shares(rows) | {"per_label": {name: shares(part) for name, part in sorted(by_label.items())}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", help="a folder of samples.jsonl written by the driving simulator")
    parser.add_argument("--styles", type=int, default=50, help="other driver styles per sample")
    parser.add_argument(
        "--noise",
        nargs="*",
        default=["0.5/0.25", "1/0.5", "2/1", "4/2"],
        help="perception errors to try, each 'DISTANCE_SD/SPEED_SD' in metres and m/s",
    )
    parser.add_argument("--draws", type=int, default=20, help="noisy readings per sample and noise level")
    args = parser.parse_args()
    try:
        levels = [tuple(float(x) for x in level.split("/")) for level in args.noise]
    except ValueError:
        levels = []
    if len(levels) != len(args.noise) or any(len(level) != 2 for level in levels):
        parser.error(f"--noise takes DISTANCE_SD/SPEED_SD pairs such as 1/0.5, got {args.noise}")
    samples = [s for s in load_generic(args.data) if s.seed is not None and s.action and s.facts]
    if not samples:
        raise SystemExit(f"error: {args.data} has no simulated samples (with seed, action and facts)")
    reproduced = np.mean(
        [decided(s, DriverStyle.draw(get_scenario(s.scenario), s.seed)) == (s.action, s.cause) for s in samples]
    )
    report = {
        "data": args.data,
        "samples": len(samples),
        "styles": args.styles,
        "reproduced": round(float(reproduced), 4),
    }
    for name, keep in (("settings_unknown", False), ("settings_known", True)):
        others = [other_labels(sample, args.styles, keep) for sample in samples]
        report[name] = {
            key: summarise(
                [
                    (getattr(sample, key), [pair[i] for pair in labels])
                    for sample, labels in zip(samples, others, strict=True)
                ]
            )
            for i, key in enumerate(("action", "cause"))
        }
    report["perception_noise"] = {}
    for sd_distance, sd_speed in levels:
        rng = np.random.default_rng([round(1000 * sd_distance), round(1000 * sd_speed)])  # the same draws in any order
        read = [noisy_labels(sample, rng, args.draws, sd_distance, sd_speed) for sample in samples]
        report["perception_noise"][f"{sd_distance:g} m / {sd_speed:g} m/s"] = {
            key: summarise(
                [
                    (getattr(sample, key), [pair[i] for pair in labels])
                    for sample, labels in zip(samples, read, strict=True)
                ]
            )
            for i, key in enumerate(("action", "cause"))
        }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
