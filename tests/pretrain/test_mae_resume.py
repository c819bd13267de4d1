"""A pretraining run killed with SIGKILL resumes from last.ckpt to the weights of a run never stopped.

The killed runs are this file run as a script (``python test_mae_resume.py OUT DIE_AT SLEEP``);
the reference and the resumed runs call the same ``run`` in the test process. Everything runs
on one thread, so the float operations are the same in both processes.
"""

from __future__ import annotations

import csv
import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from vfm.platform.training.checkpoints import AtomicCheckpointIO
from vfm.platform.training.optim import warmup_decay
from vfm.pretrain.mae import MaeConfig
from vfm.pretrain.mae_training import PretrainSettings, pretrain_mae

pytestmark = pytest.mark.slow

MAX_STEPS, BATCH, N_IMAGES, WARMUP = 12, 4, 16, 4  # 4 steps per epoch: the run spans 3 epochs


def run(out_dir: Path, die_at: int | None = None, sleep: float = 0.0) -> dict:
    """Pretrain a tiny MAE (with augmentation) for MAX_STEPS; SIGKILL itself when step ``die_at`` begins."""
    from vfm.pretrain import mae_training

    def on_train_batch_start(module, batch, batch_idx):
        if module.global_step == die_at:  # the checkpoint of step die_at is on disk
            os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(sleep)

    images = np.random.default_rng(0).standard_normal((N_IMAGES, 3, 32, 32)).astype(np.float32)
    cfg = MaeConfig.preset(
        "tiny",
        img_size=32,
        embed_dim=32,
        depth=2,
        num_heads=2,
        decoder_embed_dim=32,
        decoder_depth=1,
        decoder_num_heads=2,
    )
    settings = PretrainSettings(
        max_steps=MAX_STEPS,
        batch_size=BATCH,
        warmup_steps=WARMUP,
        precision="32",
        accelerator="cpu",
        devices=1,
        checkpoint_every_n_steps=2,
        augment=True,
        figure_every_n_epochs=0,
        seed=3,
    )
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    original = mae_training.MaeModule.on_train_batch_start
    mae_training.MaeModule.on_train_batch_start = on_train_batch_start
    try:
        return pretrain_mae(images, cfg, settings, out_dir, progress=False)
    finally:
        mae_training.MaeModule.on_train_batch_start = original
        torch.set_num_threads(threads)


def start_killable(out_dir: Path, die_at: int = -1, sleep: float = 0.0) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, __file__, str(out_dir), str(die_at), str(sleep)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def logged(out_dir: Path, version: int) -> dict[int, tuple[float, float]]:
    """step -> (train/loss, train/lr) from the CSV log of one fit."""
    with open(out_dir / "logs" / f"version_{version}" / "metrics.csv", newline="") as handle:
        return {
            int(row["step"]): (float(row["train/loss"]), float(row["train/lr"]))
            for row in csv.DictReader(handle)
            if row["train/loss"]
        }


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("uninterrupted")
    assert run(out)["steps"] == MAX_STEPS
    return out


def check_resumes_exactly(out: Path, reference: Path) -> int:
    """Resume the killed run in ``out``; checks the state it resumed from and the result. Returns that step."""
    killed = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)
    step = killed["global_step"]
    assert 0 < step < MAX_STEPS and step % 2 == 0
    adam = killed["optimizer_states"][0]["state"]
    assert all(int(s["step"]) == step for s in adam.values())  # AdamW's bias correction continues
    assert killed["lr_schedulers"][0]["last_epoch"] == step
    position = {"epoch": (step - 1) // 4, "consumed": (step - 1) % 4 + 1}  # 4 batches per epoch
    assert killed["loops"]["fit_loop"]["state_dict"]["combined_loader"] == [position]  # the data order resumes

    result = run(out)
    assert result["resumed_from_step"] == step and result["steps"] == MAX_STEPS
    final = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)
    assert all(int(s["step"]) == MAX_STEPS for s in final["optimizer_states"][0]["state"].values())

    after, straight = logged(out, 1), logged(reference, 0)
    assert sorted(after) == list(range(step, MAX_STEPS))  # the step counter went on from the checkpoint
    peak = straight[WARMUP - 1][1]  # warmup ends at the peak lr
    for s in after:
        assert after[s] == straight[s]  # the same loss and lr, to the last bit
        assert after[s][1] == pytest.approx(peak * warmup_decay(WARMUP, MAX_STEPS)(s))
    mine, theirs = load_file(out / "mae.safetensors"), load_file(reference / "mae.safetensors")
    assert all(torch.equal(mine[k], theirs[k]) for k in theirs)
    assert not list((out / "checkpoints").glob(".*"))  # no temporary file left over
    return step


@pytest.mark.parametrize("die_at", [6, 8], ids=["mid-epoch", "epoch-end"])
def test_sigkilled_run_resumes_to_the_uninterrupted_weights(tmp_path, reference, die_at):
    proc = start_killable(tmp_path, die_at)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == -signal.SIGKILL, err.decode()[-2000:]
    assert check_resumes_exactly(tmp_path, reference) == die_at


def test_run_killed_from_outside_at_any_moment_resumes_exactly(tmp_path, reference):
    proc = start_killable(tmp_path, sleep=0.15)
    last = tmp_path / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 120
    while not last.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    first = last.stat().st_mtime_ns
    while last.stat().st_mtime_ns == first and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)  # the second checkpoint is being written or was just written
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, "the run ended before it was killed: raise its sleep"
    check_resumes_exactly(tmp_path, reference)


def test_checkpoint_write_failing_midway_keeps_the_previous_file(tmp_path, monkeypatch):
    io_plugin, path = AtomicCheckpointIO(), tmp_path / "last.ckpt"
    io_plugin.save_checkpoint({"global_step": 2}, path)

    def crash(fd):
        raise OSError("disk gone")

    monkeypatch.setattr(os, "fsync", crash)  # the new bytes are written, not yet renamed into place
    with pytest.raises(OSError, match="disk gone"):
        io_plugin.save_checkpoint({"global_step": 4, "blob": torch.zeros(1000)}, path)
    assert torch.load(io.BytesIO(path.read_bytes()), weights_only=True) == {"global_step": 2}
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]


if __name__ == "__main__":
    out_dir, die_at, sleep = Path(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
    run(out_dir, die_at if die_at >= 0 else None, sleep)
