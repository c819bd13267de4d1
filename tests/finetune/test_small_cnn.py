"""The CNN baseline plugs in as the `model` component through Plugin.with_components."""

import numpy as np
import pytest

from vfm.finetune.image_pipeline import ImageClassificationPipeline
from vfm.finetune.small_cnn import SmallCnn
from vfm.platform.registry import get_plugin

pytestmark = pytest.mark.slow


def test_cnn_baseline_trains_saves_and_evaluates_through_the_pipeline(tmp_path):
    plugin = get_plugin("retina").with_components(model="vfm.finetune.small_cnn:build_small_cnn")
    assert plugin.component_path("model") == "vfm.finetune.small_cnn:build_small_cnn"
    assert get_plugin("retina").component_path("model").endswith("build_vit_classifier")
    pipeline = ImageClassificationPipeline(plugin)
    config = {
        "preprocessing": {"image_size": 32},
        "data": {"n_train": 30, "n_val": 15},
        "finetune": {"max_epochs": 1, "batch_size": 16, "precision": "32"},
    }
    metrics = pipeline.finetune(config, tmp_path / "cnn", progress=False)
    assert metrics["n_train"] == 30 and 0 <= metrics["accuracy"] <= 1
    scored = pipeline.evaluate(tmp_path / "cnn")
    assert scored["n"] == 15 and np.isfinite(scored["accuracy"])
    from vfm.finetune.vit_classifier import load_classifier

    assert isinstance(load_classifier(tmp_path / "cnn", plugin.component("model")), SmallCnn)
