"""The manifest schema: a valid manifest loads; a bad field is named in one line."""

import copy

import pytest
import yaml
from conftest import REPO

from vfm.platform.errors import VfmError
from vfm.platform.manifest import parse_manifest
from vfm.platform.registry import get_plugin

RETINA = yaml.safe_load((REPO / "plugins/retina/manifest.yaml").read_text())


def test_retina_manifest_is_valid():
    manifest = parse_manifest(RETINA, source="retina")
    assert manifest.name == "retina"
    assert manifest.labels[0].startswith("0") and len(manifest.labels) == 5


@pytest.mark.parametrize(
    ("field", "value", "named"),
    [
        ("name", "Retina!", "name"),
        ("version", "one", "version"),
        ("requires", {"vfm": "=>0.1"}, "requires"),
        ("schema_version", 2, "schema_version"),
        ("modality", "smell", "modality"),
        ("limitations", [], "limitations"),
        ("components", {"generator": "not an import path"}, "components.generator"),
        ("surprise", 1, "surprise"),
    ],
)
def test_bad_field_is_named(field, value, named):
    data = copy.deepcopy(RETINA)
    data[field] = value
    with pytest.raises(VfmError) as info:
        parse_manifest(data, source="test.yaml")
    message = str(info.value)
    assert named in message and "test.yaml" in message and "\n" not in message


def test_missing_field_and_non_mapping():
    data = copy.deepcopy(RETINA)
    del data["intended_use"]
    with pytest.raises(VfmError, match="intended_use"):
        parse_manifest(data, source="x")
    with pytest.raises(VfmError, match="not a mapping"):
        parse_manifest(["a"], source="x")


def test_plugin_components_fall_back_to_task_defaults():
    plugin = get_plugin("retina")
    assert plugin.component_path("generator") == "vfm.plugins.retina.synthetic:generate"
    assert plugin.component_path("predictor") == "vfm.serve.image_classifier:ImageClassifierPredictor"
    with pytest.raises(VfmError, match="no 'nonexistent' component"):
        plugin.component_path("nonexistent")
