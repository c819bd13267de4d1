"""The driving plugin's data contract: one decision step of a drive, with what the car
does, why, a commentary sentence and question-answer pairs.

Every source (the highway-env generator, BDD-X, the generic folder format) produces
:class:`DrivingSample` objects; the model, the metrics and the demo only read these.
Torch-free.

On disk (the generic format, written by the generator and read by ``loaders``)::

    DIR/samples.jsonl      one JSON object per sample (the fields below, frames as paths)
    DIR/frames/...png      RGB frames, referenced by relative path from samples.jsonl
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# What the ego car does at a decision step (the label space of action accuracy).
ACTIONS = (
    "accelerate",
    "keep_speed",
    "slow_down",
    "stop",
    "change_lane_left",
    "change_lane_right",
    "yield",
)

# Why it does it (the label space of cause accuracy). Derived from simulator state.
CAUSES = (
    "free_road",  # nothing constrains us: accelerate towards / hold the target speed
    "target_speed_reached",
    "slower_lead_vehicle",  # a slower vehicle ahead in our lane, within the time-headway threshold
    "close_lead_vehicle",  # the gap ahead is below the safe distance
    "cut_in",  # a vehicle moved into our lane ahead of us
    "merging_vehicle",  # a vehicle on the on-ramp is merging ahead of us
    "crossing_traffic",  # traffic crossing / with priority at the intersection or roundabout
    "free_lane_to_overtake",
    "lane_blocked",  # wanted to change lane but the neighbouring lane is occupied
    "end_of_lane",
)


@dataclass
class QAPair:
    """One question about the scene and its ground-truth answer (short text)."""

    question: str
    answer: str


@dataclass
class DrivingSample:
    """One decision step.

    Attributes:
        id: unique id, e.g. ``"highway-s12-t034"``.
        scenario: scenario type (``highway``, ``merge``, ``intersection``, ``roundabout``, ...,
            or ``bddx`` / a user's name for real data).
        frames: ``uint8 [k, H, W, 3]`` RGB clip ending at the decision step (oldest first);
            ``None`` for text-only sources (BDD-X here).
        ego_speed: ego speed in m/s at the decision step (``nan`` when unknown).
        action: one of :data:`ACTIONS` (or ``None`` when the source has no parsed action).
        cause: one of :data:`CAUSES` (or ``None``).
        commentary: one sentence saying what the car does and why.
        qa: question-answer pairs about this step.
        facts: the simulator quantities the text was made from (gap_m, closing_speed_mps,
            time_headway_s, vehicles_ahead, left_lane_free, ...), for checking and display.
        seed: the episode's seed (``None`` for real data).
        step: the decision step's index in its episode.
        frame_speeds: the ego speed at each frame of the clip (m/s, oldest first, ``nan`` where
            unknown; its last entry is ``ego_speed``), or ``None`` when only ``ego_speed`` is known.
        set_speed: the driver's set cruise speed (m/s; the adaptive cruise control's set speed),
            ``nan`` when unknown.
        set_time_gap: the driver's set time gap to the car ahead (s; the ACC's gap setting),
            ``nan`` when unknown.

    What a driver does in a scene depends on what they want as well as on what they see: the
    same gap to the same car ahead is "keeping speed" for one driver and "slowing down" for one
    with a longer time gap. A car with adaptive cruise control knows both (its dashboard shows
    them); the model reads them when given (``benchmarks/driving_label_ambiguity.py`` measures
    how much of the simulator's labels they decide).
    """

    id: str
    scenario: str
    frames: np.ndarray | None
    ego_speed: float
    action: str | None
    cause: str | None
    commentary: str
    qa: list[QAPair] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)
    seed: int | None = None
    step: int = 0
    frame_speeds: list[float] | None = None
    set_speed: float = math.nan
    set_time_gap: float = math.nan

    def speed_trace(self) -> np.ndarray:
        """The ego speed the model reads, float32 [k] m/s (oldest first): ``frame_speeds``, or
        ``ego_speed`` at the last frame and NaN before when only that is known (k = 1 without frames)."""
        if self.frame_speeds is not None:
            return np.asarray(self.frame_speeds, dtype=np.float32)
        trace = np.full(1 if self.frames is None else len(self.frames), np.nan, dtype=np.float32)
        trace[-1] = self.ego_speed
        return trace

    def driver_settings(self) -> np.ndarray:
        """``[set_speed, set_time_gap]``, float32 [2] (NaN where unknown)."""
        return np.array([self.set_speed, self.set_time_gap], dtype=np.float32)
