"""Every training verb of every installed plugin refuses bad settings in one line, before it writes
anything: a negative or non-numeric value for each numeric setting the plugin has (its own defaults
say which), ``true`` for a number, unknown sections and fields. The cases come from each plugin's
resolved default config, so a new plugin's settings are checked the moment it registers."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import PLUGINS

from vfm.platform.cli import EXIT_USER_ERROR, main
from vfm.platform.registry import discover

pytestmark = pytest.mark.slow
VERBS = ("pretrain", "finetune")


def bad_settings(plugin: str, verb: str) -> list[tuple[str, str]]:
    """``(--set override, fragment of the error)`` for one training verb of ``plugin``."""
    registry = discover()
    pipeline = registry.get(plugin).component("pipeline")(registry.get(plugin))
    section: dict[str, Any] = pipeline.resolve({}).get(verb, {})
    cases = [
        ("no_such_section.key=1", "unknown config section"),
        (f"{verb}.no_such_field=1", f"{verb}.no_such_field"),
        ("data.n_trian=10", "data.n_trian"),
    ]
    for key, value in sorted(section.items()):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        cases += [
            (f"{verb}.{key}=-1", f"invalid {key} "),
            (f"{verb}.{key}=true", f"{verb}.{key}: true is not a number"),
            (f"{verb}.{key}=lots", f"{verb}.{key}"),
        ]
    return cases


@pytest.mark.parametrize(("plugin", "verb"), [(p, v) for p in PLUGINS for v in VERBS])
def test_each_bad_setting_is_one_line_and_writes_nothing(plugin, verb, tmp_path, capfd):
    cases = bad_settings(plugin, verb)
    assert len(cases) >= 9  # the plugin's defaults name numeric settings
    failures = []
    for override, expect in cases:
        out = tmp_path / override.replace("=", "_")
        code = main([verb, plugin, "--set", override, "--out", str(out), "--no-progress"])
        err = [line for line in capfd.readouterr().err.splitlines() if line.strip()]
        if code != EXIT_USER_ERROR or len(err) != 1 or not err[0].startswith("vfm: error:"):
            failures.append(f"{override}: exit {code}: {err[-3:]}")
        elif expect not in err[0]:
            failures.append(f"{override}: expected {expect!r} in: {err[0]}")
        elif out.exists():
            failures.append(f"{override}: refused, but wrote {sorted(p.name for p in out.iterdir())}")
    assert not failures, "\n".join(failures)
