"""Scene facts as auxiliary targets: their normalisation, the masked loss, and a run that trains
the fact head beside the language loss (tiny CPU steps)."""

from __future__ import annotations

import csv
import dataclasses
import math

import numpy as np
import pytest
import torch

from vfm.platform.errors import VfmError
from vfm.plugins.driving.scene_facts import BINARY, SCENE_FACTS, fact_loss, fact_targets
from vfm.plugins.driving.training import train_commentary

from .tiny_commentary import make_samples, one_thread, tiny_settings

NAMES = [f.name for f in SCENE_FACTS]


def with_facts(samples, **facts):
    return [dataclasses.replace(s, facts=dict(facts)) for s in samples]


def test_facts_are_scaled_clipped_and_unknown_where_not_stated():
    sample = with_facts(
        make_samples(1, k=2, size=16),
        lead_present=True,
        gap_m=15.0,
        closing_speed_mps=-3.0,
        left_lane_free=False,
        right_front_gap_m=None,
        lane_end_m=1e6,
        vehicles_ahead=2,
        commanded_accel_mps2=float("nan"),
        lanes_on_road=3,
    )[0]
    row = dict(zip(NAMES, fact_targets([sample])[0].tolist()))
    assert row["lead_present"] == 1.0 and row["left_lane_free"] == 0.0
    assert row["gap_m"] == pytest.approx(0.5) and row["closing_speed_mps"] == pytest.approx(-1.0)
    assert row["vehicles_ahead"] == pytest.approx(2 / 3)
    assert row["lane_end_m"] == 3.0  # clipped: far away is as good as none
    for unknown in ("right_front_gap_m", "commanded_accel_mps2", "must_yield", "lead_speed_mps"):
        assert math.isnan(row[unknown]), unknown
    assert "lanes_on_road" not in NAMES  # not a target: ignored
    no_facts = fact_targets(make_samples(2, k=2, size=16))
    assert no_facts.shape == (2, len(SCENE_FACTS)) and np.isnan(no_facts).all()
    assert fact_targets([]).shape == (0, len(SCENE_FACTS))


def test_the_loss_counts_known_targets_only():
    targets = torch.full((2, len(SCENE_FACTS)), float("nan"))
    predicted = torch.randn(2, len(SCENE_FACTS), requires_grad=True)
    assert float(fact_loss(predicted, targets).detach()) == 0.0  # nothing known: nothing to learn
    binary, number = int(np.flatnonzero(BINARY)[0]), int(np.flatnonzero(~BINARY)[0])
    targets[0, binary], targets[1, number] = 1.0, 0.5
    loss = fact_loss(predicted, targets)
    expected = (
        torch.nn.functional.softplus(-predicted[0, binary])  # BCE with logits, target 1
        + torch.nn.functional.smooth_l1_loss(predicted[1, number], torch.tensor(0.5))
    ) / 2
    torch.testing.assert_close(loss, expected)
    loss.backward()
    touched = predicted.grad != 0
    assert touched[0, binary] and touched[1, number] and int(touched.sum()) == 2


def test_a_run_with_fact_weight_trains_the_fact_head_beside_the_text(tmp_path):
    samples = with_facts(make_samples(8, k=2, size=32), lead_present=True, gap_m=20.0, left_lane_free=True)
    samples[0] = dataclasses.replace(samples[0], facts={})  # user data without facts trains too
    with one_thread():
        train_commentary(samples, tiny_settings(max_steps=3, fact_weight=2.0), tmp_path / "run", progress=False)
        with pytest.raises(VfmError, match="does not fit this model"):  # the fact head is part of the state
            train_commentary(samples, tiny_settings(max_steps=4, fact_weight=0.0), tmp_path / "run", progress=False)
    with open(tmp_path / "run" / "logs" / "version_0" / "metrics.csv", newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if row["train/loss"]]
    assert len(rows) == 3
    for row in rows:
        text, facts, total = (float(row[f"train/{key}"]) for key in ("text_loss", "fact_loss", "loss"))
        assert facts > 0 and total == pytest.approx(text + 2.0 * facts, rel=1e-5)
    with pytest.raises(VfmError, match="fact_weight"):
        tiny_settings(fact_weight=-1.0)
