"""classification_metrics against small cases computed by hand."""

import json

import numpy as np
import pytest

from vfm.finetune.metrics import classification_metrics
from vfm.platform.errors import VfmError

Y = np.array([0, 0, 1, 1, 2, 2])
P = np.array([[0.8, 0.1, 0.1], [0.4, 0.5, 0.1], [0.2, 0.7, 0.1], [0.3, 0.3, 0.4], [0.1, 0.2, 0.7], [0.1, 0.1, 0.8]])


def test_hand_computed_three_class_case():
    m = classification_metrics(Y, P, ["a", "b", "c"])
    # arg-max predictions [0, 1, 1, 2, 2, 2]: rows 0, 2, 4, 5 right
    assert m["accuracy"] == pytest.approx(4 / 6)
    # one-vs-rest AUROC: class b ranks 7 of its 8 positive/negative pairs right, a and c all
    assert m["per_class_auroc"] == pytest.approx({"a": 1.0, "b": 7 / 8, "c": 1.0})
    assert m["auroc_macro_ovr"] == pytest.approx((1 + 7 / 8 + 1) / 3)
    # F1: a P=1 R=1/2; b P=1/2 R=1/2; c P=2/3 R=1
    assert m["per_class_f1"] == pytest.approx({"a": 2 / 3, "b": 0.5, "c": 0.8})
    # QWK: weighted observed disagreement 0.5/6, expected 12/36 -> 1 - (1/12)/(1/3)
    assert m["qwk"] == pytest.approx(0.75)
    # average precision: b's positives rank 1st and 3rd -> (1/1 + 2/3) / 2; a and c rank first
    assert m["per_class_aupr"] == pytest.approx({"a": 1.0, "b": 5 / 6, "c": 1.0})
    assert m["aupr_macro_ovr"] == pytest.approx((1 + 5 / 6 + 1) / 3)
    # ECE, 15 bins: confidences .8 .8 (right), .7 .7 (right), .5 (wrong), .4 (wrong), one bin each pair
    assert m["ece"] == pytest.approx((2 * 0.2 + 2 * 0.3 + 0.5 + 0.4) / 6, abs=1e-6)
    assert m["n"] == 6
    json.dumps(m, allow_nan=False)  # plain numbers only
    assert all(type(m[k]) is float for k in ("accuracy", "auroc_macro_ovr", "aupr_macro_ovr", "qwk", "ece"))


def test_perfect_predictions():
    m = classification_metrics([0, 1, 2], np.eye(3))
    assert m["accuracy"] == 1.0 and m["auroc_macro_ovr"] == 1.0 and m["qwk"] == 1.0
    assert m["aupr_macro_ovr"] == 1.0 and m["ece"] == 0.0
    assert list(m["per_class_f1"]) == ["0", "1", "2"]


def test_class_absent_from_truth_is_left_out_of_the_auroc_mean():
    m = classification_metrics(Y[:4], P[:4])
    assert m["per_class_auroc"]["2"] is None
    assert m["auroc_macro_ovr"] == pytest.approx((1.0 + m["per_class_auroc"]["1"]) / 2)
    assert m["per_class_f1"]["2"] == 0.0  # predicted once, never true
    assert m["per_class_aupr"]["2"] is None
    assert m["aupr_macro_ovr"] == pytest.approx((1.0 + 5 / 6) / 2)
    json.dumps(m, allow_nan=False)


def test_single_class_truth_has_undefined_auroc_and_qwk():
    m = classification_metrics([1, 1], [[0.2, 0.8], [0.1, 0.9]])
    assert m["auroc_macro_ovr"] is None and m["qwk"] is None and m["accuracy"] == 1.0
    assert m["per_class_aupr"] == {"0": None, "1": 1.0} and m["aupr_macro_ovr"] == 1.0
    assert m["ece"] == pytest.approx(0.15)  # confidences .8 and .9, both right
    json.dumps(m, allow_nan=False)


def test_bad_inputs_raise_vfm_error():
    with pytest.raises(VfmError):
        classification_metrics(Y, P[:5])
    with pytest.raises(VfmError):
        classification_metrics(Y, P, ["a", "b"])
    with pytest.raises(VfmError):
        classification_metrics(Y + 1, P)
