"""Plugin discovery through entry points."""

import subprocess
import sys

import pytest
from conftest import run_vfm

from vfm.platform.errors import VfmError
from vfm.platform.registry import discover


def test_retina_is_discovered_through_its_entry_point():
    registry = discover()
    assert "retina" in registry.plugins
    assert registry.distributions["retina"] == "vfm"


def test_unknown_plugin_names_the_installed_ones():
    with pytest.raises(VfmError, match=r"unknown plugin 'retinna' \(installed: .*retina"):
        discover().get("retinna")


def test_listing_imports_no_torch():
    code = (
        "import sys; from vfm.platform.registry import discover; r = discover(); "
        "[p.manifest for p in r.plugins.values()]; "
        "print('torch' in sys.modules, sorted(r.plugins))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("False"), out.stdout


def test_cli_list_and_show():
    listed = run_vfm("plugins", "list")
    assert listed.returncode == 0 and "retina" in listed.stdout and "(vfm)" in listed.stdout
    shown = run_vfm("plugins", "show", "retina")
    assert shown.returncode == 0 and '"task": "image-classification"' in shown.stdout
