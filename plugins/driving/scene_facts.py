"""Scene facts as auxiliary training targets: what the commentary is about, said as numbers.

The language-model loss supervises perception only through a sentence's few content words, and
its phrasing varies. The simulator's state (``DrivingSample.facts``, :mod:`annotate`) says the
same things densely: is there a car ahead, how far, how fast we close on it, which lanes are
free, what the driver commanded. :class:`CommentaryModule` can regress them from the decoder's
state at ``<bos>`` (the position that has read the whole prefix and no text yet), so that the
encoder and the decoder's reading of it learn what decides the action (see
``CommentaryTrainSettings.fact_weight``). Samples without a fact (user data, a missing car)
leave that target out of the loss.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from vfm.plugins.driving.records import DrivingSample


@dataclass(frozen=True)
class SceneFact:
    """One target: ``facts[name]``, a yes/no (``binary``) or a number divided by ``scale`` and
    clipped to ``[-limit, limit]`` (a car 300 m ahead is as good as none)."""

    name: str
    binary: bool = False
    scale: float = 1.0
    limit: float = 3.0


SCENE_FACTS: tuple[SceneFact, ...] = (
    SceneFact("lead_present", binary=True),
    SceneFact("gap_m", scale=30.0),
    SceneFact("closing_speed_mps", scale=3.0),
    SceneFact("lead_speed_mps", scale=30.0),
    SceneFact("vehicles_ahead", scale=3.0),
    SceneFact("vehicles_ahead_in_lane", scale=2.0),
    SceneFact("left_lane_exists", binary=True),
    SceneFact("left_lane_free", binary=True),
    SceneFact("right_lane_exists", binary=True),
    SceneFact("right_lane_free", binary=True),
    SceneFact("left_front_gap_m", scale=30.0),
    SceneFact("right_front_gap_m", scale=30.0),
    SceneFact("left_rear_gap_m", scale=30.0),
    SceneFact("right_rear_gap_m", scale=30.0),
    SceneFact("lead_cut_in", binary=True),
    SceneFact("merging_vehicle", binary=True),
    SceneFact("must_yield", binary=True),
    SceneFact("crossing_vehicles", scale=2.0),
    SceneFact("lane_end_m", scale=50.0),
    SceneFact("commanded_accel_mps2", scale=2.0),
)
"""The facts regressed; every other key of ``DrivingSample.facts`` is ignored."""

BINARY = np.array([f.binary for f in SCENE_FACTS])
"""bool [F]: which targets are yes/no (binary cross-entropy) rather than numbers (smooth L1)."""


def _target(fact: SceneFact, value) -> float:
    """The normalised target of one raw fact value (NaN: unknown)."""
    if value is None or isinstance(value, str):
        return math.nan
    if fact.binary:
        return float(bool(value))
    number = float(value)
    if not math.isfinite(number):
        return math.nan
    return float(np.clip(number / fact.scale, -fact.limit, fact.limit))


def fact_targets(samples: Sequence[DrivingSample]) -> np.ndarray:
    """float32 [N, F] targets of :data:`SCENE_FACTS` for ``samples`` (NaN where a sample does not
    state a fact: no car ahead has no gap, user data has no facts at all)."""
    return np.array(
        [[_target(f, s.facts.get(f.name)) for f in SCENE_FACTS] for s in samples], dtype=np.float32
    ).reshape(len(samples), len(SCENE_FACTS))


def fact_loss(predicted: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean loss over the known targets: binary cross-entropy on the logits of yes/no facts,
    smooth L1 on the numbers.

    predicted: [B, F] (logits for the binary facts); targets: [B, F] from :func:`fact_targets`
    (NaN: unknown, left out) -> a scalar (0 when nothing is known).
    """
    known = torch.isfinite(targets)  # [B, F]
    binary = torch.as_tensor(BINARY, device=targets.device).expand_as(targets)  # [B, F]
    target = torch.where(known, targets, torch.zeros_like(targets))
    predicted = predicted.float()
    losses = torch.where(
        binary,
        F.binary_cross_entropy_with_logits(predicted, target, reduction="none"),
        F.smooth_l1_loss(predicted, target, reduction="none"),
    )  # [B, F]
    return (losses * known).sum() / known.sum().clamp(min=1)
