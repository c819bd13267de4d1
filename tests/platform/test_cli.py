"""The CLI shell: --help everywhere, one-line errors with non-zero exits."""

import pytest
from conftest import run_vfm

from vfm.platform.cli import build_parser, main

VERBS = ["plugins", "pretrain", "finetune", "evaluate", "export", "predict", "serve", "demo"]


@pytest.mark.parametrize(
    "verb",
    [[], *[[v] for v in VERBS], ["plugins", "list"], ["plugins", "show"], ["plugins", "validate"], ["plugins", "new"]],
)
def test_help_on_every_verb(verb, capsys):
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args([*verb, "--help"])
    assert exit_info.value.code == 0
    assert "usage: vfm" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["pretrain", "nosuchplugin"], "unknown plugin 'nosuchplugin'"),
        (["plugins", "show", "nosuchplugin"], "unknown plugin"),
        (["pretrain", "retina", "--data", "/no/such/data.npz"], "data path not found"),
        (["pretrain", "retina", "--set", "pretrain.nosuchfield=1"], "pretrain.nosuchfield"),
        (["pretrain", "retina", "--config", "/no/such.yaml"], "config file not found"),
        (["evaluate", "retina", "--run", "/no/such/run"], "run directory not found"),
        (["export", "retina", "--run", "/no/such/run"], "not a fine-tuned run"),
        (["predict", "/no/such/bundle", "x.png"], "bundle not found"),
        (["serve", "/no/such/bundle"], "bundle not found"),
        (["demo", "--plugins", "nosuchplugin", "--build-only"], "unknown plugin"),
    ],
)
def test_errors_are_one_line_and_non_zero(args, message, capsys):
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and err.startswith("vfm: error:") and err.count("\n") == 1


def test_debug_shows_the_traceback():
    out = run_vfm("--debug", "plugins", "show", "nosuchplugin")
    assert out.returncode != 0 and "Traceback" in out.stderr


def test_bad_usage_exits_non_zero():
    out = run_vfm("pretrain")
    assert out.returncode == 2 and "usage:" in out.stderr


def test_a_full_disk_is_one_line_naming_the_file(tmp_path, monkeypatch, capsys):
    """The machine's state (a full disk, no permission) is the user's to fix, not an internal error."""
    import errno

    from vfm.platform import cli, signing

    def full(path, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(signing, "atomic_write_text", full)
    assert cli.main(["keys", "new", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "the disk is full" in err and "vfm-signing.pub" in err and "internal error" not in err
