"""`vfm demo` builds one bundle per plugin, caches it, and rebuilds a tampered one."""

import json

import pytest
from conftest import run_vfm

from vfm.finetune.image_pipeline import ImageClassificationPipeline
from vfm.platform.bundle import load_bundle
from vfm.platform.registry import get_plugin

pytestmark = pytest.mark.slow

SMOKE = ImageClassificationPipeline(get_plugin("retina")).smoke_config()
SETS = [
    arg
    for section, values in SMOKE.items()
    for key, value in values.items()
    for arg in ("--set", f"{section}.{key}={value}")
]


def test_demo_bundles_are_cached_verified_and_rebuilt_when_tampered(tmp_path):
    build = ["demo", "--plugins", "retina", "--build-only", "--cache-dir", str(tmp_path), *SETS]
    first = run_vfm(*build)
    assert first.returncode == 0, first.stderr[-3000:]
    bundle = json.loads(first.stdout)["retina"]
    assert "building the demo bundle" in first.stderr
    assert load_bundle(bundle).plugin_name == "retina"
    work = tmp_path.joinpath(bundle).parent
    trained = (work / "finetune" / "classifier.safetensors").stat().st_mtime_ns

    second = run_vfm(*build)
    assert second.returncode == 0 and json.loads(second.stdout)["retina"] == bundle
    assert "cached bundle" in second.stderr and "building" not in second.stderr

    (work / "bundle" / "labels.json").write_text('["tampered"]')
    third = run_vfm(*build)
    assert third.returncode == 0, third.stderr[-3000:]
    assert "unusable" in third.stderr and "checksum mismatch" in third.stderr
    assert load_bundle(bundle).json("labels.json")[0].startswith("0")
    # the finished pretraining and fine-tuning steps were reused, only the export ran again
    assert (work / "finetune" / "classifier.safetensors").stat().st_mtime_ns == trained
