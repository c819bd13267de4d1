"""The plugin contract, checked on every installed plugin (as timm's tests iterate over its models): a
plugin is tested the moment it registers. The scaffold of ``vfm plugins new`` passes the same checks."""

from __future__ import annotations

import inspect
from importlib import resources

import pytest

from vfm.platform.config import build_settings
from vfm.platform.pipeline import Pipeline
from vfm.platform.plugin import Plugin
from vfm.platform.registry import discover
from vfm.platform.scaffold import create_plugin
from vfm.platform.training.settings import TrainSettings

REGISTRY = discover()
NAMES = sorted(REGISTRY.plugins)
VERBS = ("pretrain", "finetune", "evaluate", "export", "smoke_config", "check_forward", "build_demo_bundle")


def _pipeline(plugin: Plugin) -> Pipeline:
    return plugin.component("pipeline")(plugin)


def test_the_builtin_plugins_are_installed_and_none_is_broken():
    assert {"retina", "finance", "driving"} <= set(NAMES)
    assert REGISTRY.broken == []


@pytest.mark.parametrize("name", NAMES)
def test_the_pipeline_implements_the_typed_contract(name):
    pipeline = _pipeline(REGISTRY.plugins[name])
    assert isinstance(pipeline, Pipeline)
    for verb in VERBS:  # the contract's parameters, by name, so the CLI can call every plugin alike
        expected = inspect.signature(getattr(Pipeline, verb)).parameters
        got = inspect.signature(getattr(type(pipeline), verb)).parameters
        assert list(got)[: len(expected)] == list(expected), f"{name}.{verb}{tuple(got)}"


@pytest.mark.parametrize("name", NAMES)
def test_every_declared_component_is_used_and_resolves(name):
    plugin = REGISTRY.plugins[name]
    assert plugin.check_components() == [] and plugin.unused_components() == []
    for component in ("pipeline", "predictor", "demo_tab"):
        assert callable(plugin.component(component))


@pytest.mark.parametrize("name", NAMES)
def test_the_smoke_config_resolves_and_a_fake_input_goes_through(name):
    pipeline = _pipeline(REGISTRY.plugins[name])
    config = pipeline.resolve(pipeline.smoke_config())
    assert {"plugin", "data", "pretrain", "finetune"} <= set(config) and config["plugin"] == name
    assert pipeline.check_forward()  # a fake-input forward pass with shapes checked


def test_a_manifest_declaring_a_component_its_task_never_uses_is_reported(tmp_path, monkeypatch):
    package = tmp_path / "unused_plugin"
    package.mkdir()
    (package / "__init__.py").write_text("")
    manifest = resources.files("vfm.plugins.finance").joinpath("manifest.yaml").read_text("utf-8")
    (package / "manifest.yaml").write_text(
        manifest.replace("name: finance", "name: unused_plugin")
        + "  loader: vfm.plugins.finance.data.loaders:load_any\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    assert Plugin.from_package("unused_plugin").unused_components() == ["loader"]


def test_the_scaffold_pipeline_satisfies_the_contract(tmp_path, monkeypatch):
    create_plugin("contract_check", tmp_path / "contract_check", domain="dermatology")
    source = next(p for p in (tmp_path / "contract_check").rglob("manifest.yaml")).parent
    monkeypatch.syspath_prepend(str(source.parent))
    plugin = Plugin.from_package(source.name)
    assert plugin.check_components() == [] and plugin.unused_components() == []
    assert isinstance(_pipeline(plugin), Pipeline)


def test_every_training_settings_class_is_a_train_settings():
    from vfm.finetune.classification_training import FinetuneSettings
    from vfm.plugins.driving.training import CommentaryTrainSettings
    from vfm.plugins.finance.generation.generator_training import TrainingSettings
    from vfm.pretrain.mae_training import PretrainSettings
    from vfm.pretrain.text_adaptation import TextAdaptSettings

    for cls in (PretrainSettings, FinetuneSettings, TextAdaptSettings, TrainingSettings, CommentaryTrainSettings):
        assert issubclass(cls, TrainSettings)
        settings = build_settings(cls, {"max_steps": 3, "num_nodes": 1, "strategy": "auto"}, "section")
        assert settings.max_steps == 3
