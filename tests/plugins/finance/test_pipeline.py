"""What the finance pipeline accepts: a training run (generator weights) to evaluate and export, a
bundle (ONNX) to evaluate; anything else is refused in one line naming the missing files."""

from __future__ import annotations

import pytest

from vfm.platform.errors import VfmError
from vfm.platform.registry import get_plugin
from vfm.plugins.finance.pipeline import READER_FILES, check_model_folder

RUN = ("generator.safetensors", "generator_config.json", *READER_FILES)


def _touch(folder, *names):
    for name in names:
        (folder / name).write_text("{}")


def test_a_run_is_accepted_for_evaluate_and_once_finished_for_export(tmp_path):
    _touch(tmp_path, *RUN)
    check_model_folder(tmp_path)
    with pytest.raises(VfmError, match="not a finished finance training run: metrics.json missing"):
        check_model_folder(tmp_path, export=True)
    _touch(tmp_path, "metrics.json")
    check_model_folder(tmp_path, export=True)


def test_a_bundle_is_accepted_for_evaluate_only(tmp_path):
    _touch(tmp_path, "encoder.onnx", *READER_FILES)
    with pytest.raises(VfmError, match="not a finance bundle: decoder_step.onnx missing"):
        check_model_folder(tmp_path)
    _touch(tmp_path, "decoder_step.onnx", "metrics.json")
    check_model_folder(tmp_path)
    with pytest.raises(VfmError, match="generator.safetensors, generator_config.json missing") as info:
        check_model_folder(tmp_path, export=True)
    assert "\n" not in str(info.value)


def test_export_refuses_a_folder_without_generator_weights_in_one_line(tmp_path):
    _touch(tmp_path, *READER_FILES, "metrics.json")
    plugin = get_plugin("finance")
    with pytest.raises(VfmError, match="not a finished finance training run: generator.safetensors") as info:
        plugin.component("pipeline")(plugin).export(tmp_path, tmp_path / "bundle")
    assert "\n" not in str(info.value) and info.value.fix and not (tmp_path / "bundle").exists()
