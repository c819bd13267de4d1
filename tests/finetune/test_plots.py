"""Validation plots: files written atomically, readable, and showing the numbers of metrics.json."""

import numpy as np
import pytest
import torch
from PIL import Image

from vfm.finetune.metrics import classification_metrics
from vfm.finetune.plots import reliability_bins, roc_figure, write_classification_plots
from vfm.platform.errors import VfmError

Y = np.array([0, 0, 1, 1, 2, 2])
P = np.array([[0.8, 0.1, 0.1], [0.4, 0.5, 0.1], [0.2, 0.7, 0.1], [0.3, 0.3, 0.4], [0.1, 0.2, 0.7], [0.1, 0.1, 0.8]])


def test_three_png_files_and_nothing_else(tmp_path):
    paths = write_classification_plots(Y, P, ["a", "b", "c"], tmp_path / "plots")
    assert [p.name for p in paths] == ["roc_curves.png", "confusion_matrix.png", "reliability_diagram.png"]
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == sorted(p.name for p in paths)  # no temp files
    for path in paths:
        with Image.open(path) as image:
            assert image.format == "PNG" and min(image.size) > 200


def test_roc_legend_has_each_class_auroc_or_says_why_not():
    m = classification_metrics(Y[:4], P[:4], ["a", "b", "c"])
    fig = roc_figure(torch.as_tensor(Y[:4]), torch.as_tensor(P[:4], dtype=torch.float32), ["a", "b", "c"])
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert legend == [
        f"a (AUROC {m['per_class_auroc']['a']:.3f})",
        f"b (AUROC {m['per_class_auroc']['b']:.3f})",
        "c (AUROC undefined: no positives)",
    ]


def test_reliability_bins_give_the_metrics_ece():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 2, (200, 4))
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    labels = rng.integers(0, 4, 200)
    conf, acc, share = reliability_bins(torch.as_tensor(labels), torch.as_tensor(probs, dtype=torch.float32))
    assert conf.shape == acc.shape == share.shape == (15,) and share.sum() == pytest.approx(1.0)
    ece = float(np.sum(share * np.abs(acc - conf)))
    assert ece == pytest.approx(classification_metrics(labels, probs)["ece"], abs=1e-6)


def test_mismatched_inputs_raise_vfm_error(tmp_path):
    with pytest.raises(VfmError, match="write_classification_plots"):
        write_classification_plots(Y, P[:5], None, tmp_path)
