"""How precisely a trained driving model reads the scene: its scene-fact head against the simulator.

A run trained with ``finetune.fact_weight > 0`` has a linear head on the decoder's ``<bos>`` state
that regresses the simulator's facts (:mod:`vfm.plugins.driving.scene_facts`; training only, kept
in ``checkpoints/last.ckpt``). On a simulated split this reports:

- ``facts``: for each fact, the mean absolute error in its own unit (metres, m/s, cars) or, for
  yes/no facts, the accuracy;
- ``rules_on_readings``: the action and cause accuracy of the episode's own scripted driver
  (``policy.ScriptedDriver`` with the episode's style) deciding on the head's readings instead of
  the true facts (facts the head does not read stay exact). Set beside
  ``benchmarks/driving_label_ambiguity.py --noise``, it says which perception-error level the
  model's reading corresponds to. The commentary's own accuracy is in the run's ``metrics.json``.

    python benchmarks/driving_scene_reading.py RUN DATA_DIR [--max-samples N]

``RUN`` is a ``vfm finetune driving`` output folder; ``DATA_DIR`` a folder of ``samples.jsonl``
written by the simulator at the run's frame size (e.g. a split of its data cache).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from vfm.plugins.driving.annotate import label
from vfm.plugins.driving.loaders import load_generic
from vfm.plugins.driving.model import load_commentary_model
from vfm.plugins.driving.policy import DriverStyle, ScriptedDriver
from vfm.plugins.driving.scenarios import get_scenario
from vfm.plugins.driving.scene_facts import SCENE_FACTS, fact_targets
from vfm.plugins.driving.training import clip_array

COUNTS = frozenset({"vehicles_ahead", "vehicles_ahead_in_lane", "crossing_vehicles"})
"""Facts that are numbers of cars: read as the nearest whole number."""


def fact_head(run: Path) -> torch.nn.Linear:
    """The run's scene-fact head from its training checkpoint."""
    checkpoint = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True, map_location="cpu")
    weights = {
        key.removeprefix("fact_head."): value
        for key, value in checkpoint["state_dict"].items()
        if key.startswith("fact_head.")
    }
    if not weights:
        raise SystemExit(f"error: {run} was trained without scene facts (finetune.fact_weight=0): nothing to read")
    head = torch.nn.Linear(weights["weight"].shape[1], weights["weight"].shape[0])
    head.load_state_dict(weights)
    return head


@torch.no_grad()
def read_facts(run: Path, samples: list, batch: int = 64) -> np.ndarray:
    """float32 [N, F]: the head's readings of :data:`SCENE_FACTS` for ``samples``, in the facts' units
    (numbers scaled back, yes/no facts as logits)."""
    model, tokenizer = load_commentary_model(run / "model")
    model.eval()
    head = fact_head(run)
    frames, speeds = clip_array(samples)  # [N, k, S, S, 3], [N, k]
    settings = torch.from_numpy(np.stack([s.driver_settings() for s in samples]))  # [N, 2]
    prompt = torch.tensor([tokenizer.prompt("")])  # <bos> <sep>: the commentary's prompt
    readings = []
    for start in range(0, len(samples), batch):
        clip = torch.from_numpy(frames[start : start + batch]).permute(0, 1, 4, 2, 3).float() / 255.0
        tokens = prompt.expand(len(clip), -1)
        _, state = model(
            clip,
            torch.from_numpy(speeds[start : start + batch]),
            tokens,
            torch.full_like(tokens, -100),
            settings[start : start + batch],
            with_state=True,
        )  # state [B, D]
        readings.append(head(state).numpy())
    scale = np.array([1.0 if f.binary else f.scale for f in SCENE_FACTS], dtype=np.float32)
    return np.concatenate(readings) * scale


def as_facts(true: dict, reading: np.ndarray) -> dict:
    """``true`` facts with every fact the head reads replaced by its reading (a number the scene does
    not have, e.g. a gap with no car ahead, stays absent; a car read where none is is not followed)."""
    facts = dict(true)
    for fact, value in zip(SCENE_FACTS, reading):
        if fact.name == "commanded_accel_mps2" or fact.name not in facts:
            continue
        if fact.binary:
            facts[fact.name] = bool(value > 0)
        elif facts[fact.name] is not None:
            facts[fact.name] = float(round(value)) if fact.name in COUNTS else float(value)
    if facts.get("lead_present") and facts.get("gap_m") is None:
        facts["lead_present"] = False
    return facts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path, help="a `vfm finetune driving` output folder")
    parser.add_argument("data", help="a folder of samples.jsonl written by the driving simulator")
    parser.add_argument("--max-samples", type=int, default=None)
    args = parser.parse_args()
    samples = [s for s in load_generic(args.data) if s.seed is not None and s.frames is not None and s.facts]
    samples = samples[: args.max_samples]
    if not samples:
        raise SystemExit(f"error: {args.data} has no simulated samples (with seed, frames and facts)")
    readings = read_facts(args.run, samples)  # [N, F]
    targets = fact_targets(samples)  # [N, F], scaled
    report = {"run": str(args.run), "data": args.data, "samples": len(samples), "facts": {}}
    for j, fact in enumerate(SCENE_FACTS):
        known = np.isfinite(targets[:, j])
        if not known.any():
            continue
        if fact.binary:
            right = (readings[known, j] > 0) == (targets[known, j] > 0.5)
            report["facts"][fact.name] = {"count": int(known.sum()), "accuracy": round(float(right.mean()), 4)}
        else:  # the targets are clipped to +-limit * scale: compare within that range
            error = np.abs(
                np.clip(readings[known, j], -fact.limit * fact.scale, fact.limit * fact.scale)
                - targets[known, j] * fact.scale
            )
            report["facts"][fact.name] = {"count": int(known.sum()), "mae": round(float(error.mean()), 3)}
    hits = np.zeros(2)
    for sample, reading in zip(samples, readings, strict=True):
        scenario = get_scenario(sample.scenario)
        facts = as_facts(sample.facts, reading)
        decided = label(ScriptedDriver(scenario, DriverStyle.draw(scenario, sample.seed)).decide(facts), facts)
        hits += [decided[0] == sample.action, decided[1] == sample.cause]
    report["rules_on_readings"] = {
        "action": round(hits[0] / len(samples), 4),
        "cause": round(hits[1] / len(samples), 4),
    }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
