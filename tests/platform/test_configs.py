"""The reported recipes in configs/<plugin>/*.yaml load: every section resolves through its plugin and
every training field is one the run's settings know (a renamed or removed option fails here)."""

from __future__ import annotations

from pathlib import Path

import pytest

from vfm.platform.config import build_settings, load_yaml_file
from vfm.platform.registry import get_plugin

CONFIGS = sorted((Path(__file__).resolve().parents[2] / "configs").glob("*/*.yaml"))
NOT_SETTINGS = {"pretrained", "base", "preset", "patch_size"}  # read by the pipelines themselves


def _settings_classes(plugin: str) -> dict[str, type]:
    from vfm.finetune.classification_training import FinetuneSettings
    from vfm.plugins.driving.training import CommentaryTrainSettings
    from vfm.plugins.finance.generation.generator_training import TrainingSettings
    from vfm.pretrain.mae_training import PretrainSettings
    from vfm.pretrain.text_adaptation import TextAdaptSettings

    return {
        "retina": {"pretrain": PretrainSettings, "finetune": FinetuneSettings},
        "finance": {"pretrain": TextAdaptSettings, "finetune": TrainingSettings},
        "driving": {"pretrain": PretrainSettings, "finetune": CommentaryTrainSettings},
    }[plugin]


def test_every_plugin_has_a_reported_recipe():
    assert {path.parent.name for path in CONFIGS} >= {"retina", "finance", "driving"}


@pytest.mark.parametrize("path", CONFIGS, ids=[f"{p.parent.name}/{p.stem}" for p in CONFIGS])
def test_a_reported_recipe_loads(path):
    from vfm.pretrain.mae import SHAPE_FIELDS

    plugin = get_plugin(path.parent.name)
    pipeline = plugin.component("pipeline")(plugin)
    given = load_yaml_file(path)
    config = pipeline.resolve(given)
    for section, cls in _settings_classes(plugin.name).items():
        if section not in given:
            continue
        fields = {k: v for k, v in config[section].items() if k not in NOT_SETTINGS | set(SHAPE_FIELDS)}
        assert build_settings(cls, fields, section) is not None
