"""Checkpoints a killed run resumes from: written atomically, checked before resuming, and the
training time they carry across calls."""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.plugins import TorchCheckpointIO

from vfm.platform.errors import VfmError
from vfm.platform.fileio import atomic_write_bytes


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes a checkpoint to a temporary file beside it, fsyncs it and renames it over the old one.

    A run killed while saving leaves the previous ``last.ckpt`` whole. Lightning's own writer
    stages the file in the system temp folder and moves it into place, which is a plain,
    interruptible copy when that folder is on another filesystem, and never fsyncs.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        atomic_write_bytes(path, buffer.getbuffer())


class TrainingClock(Callback):
    """Seconds of training over every call of a resumed run, and the step this call started at.

    The time of the earlier calls travels in the checkpoint (callback state), so a run killed and
    resumed reports its whole training time, not only the last call's. Time after the last
    checkpoint of a killed call is lost with it.
    """

    def __init__(self) -> None:
        self.before = 0.0
        self.started: float | None = None
        self.ended: float | None = None
        self.start_step: int | None = None  # None: this call trained nothing

    def on_train_start(self, trainer, pl_module) -> None:
        self.started, self.start_step = time.perf_counter(), trainer.global_step

    def on_train_end(self, trainer, pl_module) -> None:
        self.ended = time.perf_counter()

    def this_call(self) -> float:
        """Training seconds of this call (0 when it trained nothing)."""
        return 0.0 if self.started is None else (self.ended or time.perf_counter()) - self.started

    def seconds(self) -> float:
        """Training seconds of the earlier calls (as checkpointed) plus this call's, up to its end."""
        return self.before + self.this_call()

    def state_dict(self) -> dict[str, float]:
        return {"seconds": self.seconds()}

    def load_state_dict(self, state: dict[str, float]) -> None:
        self.before = float(state.get("seconds", 0.0))


def keep_trained_result(result: dict[str, Any], previous: dict[str, Any] | None) -> dict[str, Any]:
    """What a run's metrics should record after a training call: ``result``, unless that call
    trained nothing (its checkpoint had already reached the last step, so its ``seconds`` are 0)
    and ``previous`` (the run's recorded result, or None) is the call that reached that step;
    then ``previous``, whose timing and throughput are the run's."""
    if (
        result["steps"] > result["resumed_from_step"]
        or not isinstance(previous, dict)
        or previous.get("steps") != result["steps"]
    ):
        return result
    return previous


def resumable_checkpoint(module: torch.nn.Module, path: Path) -> Path | None:
    """``path`` when it holds a checkpoint whose weights fit ``module`` (resume from it), None
    when there is none.

    Raises:
        VfmError: the file cannot be read, or its weights have other names or shapes (another
            model config, or a vfm version whose model changed), one line instead of
            Lightning's multi-line state-dict error.
    """
    if not path.exists():
        return None
    fix = (
        f"resume with the settings and vfm version that wrote it, or start again: a new --out folder, or delete {path}"
    )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
    except Exception as err:  # a damaged file: zip, unpickling or key errors
        raise VfmError(
            f"cannot read the checkpoint to resume from ({str(err).splitlines()[0][:120]})", where=str(path), fix=fix
        ) from None
    own = module.state_dict()
    missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    reshaped = sorted(k for k in set(own) & set(state) if tuple(own[k].shape) != tuple(state[k].shape))
    if missing or unexpected or reshaped:
        raise VfmError(
            f"the checkpoint to resume from does not fit this model (missing {missing[:2]}, "
            f"unexpected {unexpected[:2]}, other shapes {reshaped[:2]})",
            where=str(path),
            fix=fix,
        )
    return path
