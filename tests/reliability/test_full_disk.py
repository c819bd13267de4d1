"""A full disk is the machine's state, not a bug: ``vfm export`` and ``vfm finetune`` of every
installed plugin, writing to a disk with no room, stop with one line naming the file and the fix,
and leave no half-written bundle. The disk is a 64 KiB tmpfs where this process may mount one; else
a stand-in: the same commands under a 64 KiB file-size limit (``ulimit -f``), whose writes fail alike."""

from __future__ import annotations

import resource
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from conftest import PLUGINS

from vfm.platform.cli import EXIT_USER_ERROR
from vfm.platform.registry import discover

pytestmark = pytest.mark.slow
LIMIT = 64 * 1024


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[tuple[Path, bool]]:
    """``(folder, mounted)``: a 64 KiB tmpfs when mounting is allowed, else a plain folder."""
    folder = tmp_path / "disk"
    folder.mkdir()
    mounted = (
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={LIMIT}", "tmpfs", str(folder)], capture_output=True
        ).returncode
        == 0
    )
    yield folder, mounted
    if mounted:
        subprocess.run(["umount", str(folder)], check=True)


def _file_size_limit() -> None:  # in the child, before exec
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit then fails with EFBIG
    resource.setrlimit(resource.RLIMIT_FSIZE, (LIMIT, LIMIT))


def _vfm(args: list[str], mounted: bool) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vfm.platform.cli", *args],
        capture_output=True,
        text=True,
        timeout=600,
        preexec_fn=None if mounted else _file_size_limit,
    )


def _check_refusal(result: subprocess.CompletedProcess[str], disk: Path) -> None:
    errors = [line for line in result.stderr.splitlines() if line.startswith("vfm:")]
    assert result.returncode == EXIT_USER_ERROR, result.stderr[-2000:]
    assert len(errors) == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert "internal error" not in errors[0]
    assert ("the disk is full" in errors[0] or "file-size limit" in errors[0]) and str(disk) in errors[0], errors[0]


@pytest.mark.parametrize("plugin", PLUGINS)
def test_export_to_a_full_disk_is_one_line_and_leaves_no_bundle(plugin, smoke_bundles, small_disk):
    disk, mounted = small_disk
    run = smoke_bundles[plugin].parent / "finetune"
    result = _vfm(["export", plugin, "--run", str(run), "--out", str(disk / "bundle")], mounted)
    _check_refusal(result, disk)
    assert not (disk / "bundle").exists()
    assert not [p for p in disk.iterdir() if p.name != "lost+found"], sorted(disk.iterdir())  # no staging left


@pytest.mark.parametrize("plugin", PLUGINS)
def test_finetune_to_a_full_disk_is_one_line(plugin, small_disk, tmp_path):
    disk, mounted = small_disk
    registry = discover()
    config = registry.get(plugin).component("pipeline")(registry.get(plugin)).smoke_config()
    (tmp_path / "smoke.yaml").write_text(yaml.safe_dump(config))
    args = ["finetune", plugin, "--config", str(tmp_path / "smoke.yaml"), "--out", str(disk / "run"), "--no-progress"]
    _check_refusal(_vfm(args, mounted), disk)
