"""Model cards say when a run stopped at its wall-clock cap instead of its planned work."""

from vfm.platform.model_card import render_model_card
from vfm.platform.registry import get_plugin

PARITY = {"atol": 1e-4, "rtol": 1e-3, "n_inputs": 2, "passed": True, "outputs": {}}


def _card(metrics):
    return render_model_card(get_plugin("finance").manifest, metrics=metrics, parity=PARITY, config={"data": {}})


def test_a_run_stopped_by_its_time_cap_is_marked_under_trained():
    capped = {"training": {"epochs": 2, "stopped_by_time": True}, "evaluation": {"accuracy": 0.1}}
    assert "**Under-trained:**" in _card(capped)
    nested = {"calls": [{"stopped_by_time": False}, {"stopped_by_time": True}]}
    assert "**Under-trained:**" in _card(nested)


def test_a_run_that_did_its_planned_work_is_not_marked():
    assert "Under-trained" not in _card({"training": {"epochs": 9, "stopped_by_time": False}})
    assert "Under-trained" not in _card({"evaluation": {"accuracy": 0.8}})
