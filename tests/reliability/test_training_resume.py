"""Every training verb of every installed plugin resumes after ``kill -9``: the run is killed as soon as
it has checkpointed, the same command is run again, and the step counter and the optimizer state
continue from the checkpoint instead of starting over. New plugins are tested the moment they register."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from vfm.platform.config import deep_merge
from vfm.platform.registry import discover

pytestmark = pytest.mark.slow
STEPS = 40  # long enough to be killed mid-run, with a checkpoint after every step
CASES = [(name, verb) for name in sorted(discover().plugins) for verb in ("pretrain", "finetune")]


def _command(plugin: str, verb: str, tmp_path: Path) -> list[str]:
    registry = discover()
    pipeline = registry.get(plugin).component("pipeline")(registry.get(plugin))
    # only fields every run has (TrainSettings): the test needs nothing plugin-specific
    config = deep_merge(
        pipeline.smoke_config(), {verb: {"max_steps": STEPS, "checkpoint_every_n_steps": 1, "max_minutes": None}}
    )
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return [
        sys.executable,
        "-m",
        "vfm.platform.cli",
        verb,
        plugin,
        "--config",
        str(path),
        "--out",
        str(tmp_path / "run"),
        "--no-progress",
    ]


def _found(result: Any, key: str) -> list[Any]:
    """Every value of ``key`` anywhere in a JSON result."""
    if isinstance(result, dict):
        return [v for k, v in result.items() if k == key] + [x for v in result.values() for x in _found(v, key)]
    if isinstance(result, list):
        return [x for v in result for x in _found(v, key)]
    return []


def _optimizer_steps(checkpoint: dict[str, Any]) -> set[int]:
    return {int(state["step"]) for state in checkpoint["optimizer_states"][0]["state"].values()}


@pytest.mark.parametrize(("plugin", "verb"), CASES, ids=[f"{p}-{v}" for p, v in CASES])
def test_a_killed_run_resumes_its_steps_and_optimizer(plugin, verb, tmp_path):
    command = _command(plugin, verb, tmp_path)
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while not last.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    _, stderr = process.communicate()
    assert process.returncode == -signal.SIGKILL, f"the run ended before it was killed:\n{stderr.decode()[-2000:]}"
    killed = torch.load(last, map_location="cpu", weights_only=True)
    assert 1 <= killed["global_step"] < STEPS

    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert killed["global_step"] in _found(json.loads(result.stdout), "resumed_from_step")
    final = torch.load(last, map_location="cpu", weights_only=True)
    assert final["global_step"] == STEPS
    assert _optimizer_steps(final) == {STEPS}  # AdamW's counts went on from the checkpoint's
    assert _optimizer_steps(killed) == {killed["global_step"]}
