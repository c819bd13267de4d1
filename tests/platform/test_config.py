"""Configs: defaults < YAML file < overrides; unknown or mistyped fields are named."""

import dataclasses

import pytest

from vfm.platform.config import build_settings, parse_override, resolve_config, write_config
from vfm.platform.errors import VfmError


def test_precedence_and_written_config_reproduces(tmp_path):
    file = tmp_path / "c.yaml"
    file.write_text("pretrain: {max_steps: 10, batch_size: 4}\ndata: {seed: 1}\n")
    config = resolve_config(
        {"pretrain": {"max_steps": 1, "preset": "tiny"}},
        file,
        ["pretrain.max_steps=50", "data.source=/x/y.npz", "finetune.lr=1e-3"],
    )
    assert config == {
        "pretrain": {"max_steps": 50, "preset": "tiny", "batch_size": 4},
        "data": {"seed": 1, "source": "/x/y.npz"},
        "finetune": {"lr": 1e-3},
    }
    written = write_config(config, tmp_path / "run")
    assert resolve_config({}, written) == config


@pytest.mark.parametrize("bad", ["novalue", "=3", "a..b=1"])
def test_bad_override(bad):
    with pytest.raises(VfmError, match="override"):
        parse_override(bad)


def test_bad_config_files(tmp_path):
    with pytest.raises(VfmError, match="not found"):
        resolve_config({}, tmp_path / "missing.yaml")
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    with pytest.raises(VfmError, match="mapping"):
        resolve_config({}, tmp_path / "list.yaml")
    (tmp_path / "broken.yaml").write_text("a: [1, 2\n")
    with pytest.raises(VfmError, match="not valid YAML"):
        resolve_config({}, tmp_path / "broken.yaml")


@dataclasses.dataclass
class Settings:
    steps: int = 3
    lr: float = 0.1
    precision: str = "32"
    model: str | None = None


def test_build_settings_names_bad_fields():
    assert build_settings(Settings, {"steps": "7"}, "pretrain") == Settings(steps=7)
    with pytest.raises(VfmError, match=r"pretrain\.stesp.*valid fields.*steps"):
        build_settings(Settings, {"stesp": 7}, "pretrain")
    with pytest.raises(VfmError, match=r"pretrain\.lr"):
        build_settings(Settings, {"lr": "fast"}, "pretrain")


def test_a_number_given_to_a_text_field_is_its_text():
    """``--set finetune.precision=32`` reaches the settings as YAML's number 32."""
    overrides = resolve_config({}, None, ["pretrain.precision=32", "pretrain.model=7", "pretrain.lr=1"])["pretrain"]
    assert build_settings(Settings, overrides, "pretrain") == Settings(lr=1.0, precision="32", model="7")


def test_unknown_sections_and_fields_are_named_and_refused():
    from vfm.platform.config import check_known_keys

    defaults = {"plugin": "x", "data": {"source": "synthetic", "n_train": 10}, "finetune": {"lr": 1.0}}
    check_known_keys(defaults | {"finetune": {"anything": 1}}, defaults)  # settings sections: checked where built
    with pytest.raises(VfmError, match=r"unknown config field\(s\) data.n_trian .*valid fields in 'data' are: "):
        check_known_keys({**defaults, "data": {"n_trian": 10}}, defaults)
    with pytest.raises(VfmError, match=r"unknown config section\(s\) bogus"):
        check_known_keys({**defaults, "bogus": {"key": 1}}, defaults)


@pytest.mark.parametrize("override", ["data.n_trian=10", "bogus.key=1"])
def test_the_cli_refuses_a_typo_before_training(override, tmp_path):
    from tests.conftest import run_vfm

    result = run_vfm("finetune", "retina", "--set", override, "--out", str(tmp_path / "run"))
    assert result.returncode == 2 and "unknown config" in result.stderr and not (tmp_path / "run").exists()
