"""The only place a Lightning ``Trainer`` is built: :func:`fit` trains a LightningModule under a
:class:`~vfm.platform.training.settings.TrainSettings`, checkpoints it atomically into
``out_dir/checkpoints/`` and resumes from ``last.ckpt`` when it is there.

What every run gets from here: the length (steps or epochs) and the optional wall-clock cap
(a warning when it stops the run), precision resolved for the hardware, devices / nodes /
strategy, ``last.ckpt`` every ``checkpoint_every_n_steps`` (or every epoch) and at the end, the
best checkpoint on a monitored validation metric (``best.ckpt``), a CSV log per call
(``logs/version_N``), the training clock over all calls, and ``set_epoch`` on batch samplers.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, cast

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint, RichProgressBar, Timer
from lightning.pytorch.loggers import CSVLogger

from vfm.platform.errors import VfmError
from vfm.platform.training.checkpoints import AtomicCheckpointIO, TrainingClock, resumable_checkpoint
from vfm.platform.training.settings import TrainSettings

log = logging.getLogger("vfm.training")
# Lightning advertises a cloud logger at every Trainer construction (an INFO line, not a warning)
logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(
    lambda record: not str(record.msg).startswith("💡 Tip")
)

CHECKPOINTS, LAST = "checkpoints", "last.ckpt"
_QUIET = (
    ".*does not have many workers.*",
    ".*exists and is not empty.*",
    ".*resuming from a checkpoint.*",
    ".*mid-epoch.*",
    ".*LeafSpec.*",
    ".*smaller than the logging interval.*",
)


def resolve_precision(precision: str) -> str:
    """``"auto"`` -> ``"bf16-mixed"`` on a CUDA GPU that supports bf16 or a CPU whose
    ``torch.backends.cpu.get_cpu_capability()`` is AVX512 or AMX, else ``"32"``; others unchanged."""
    if precision != "auto":
        return precision
    if torch.cuda.is_available():
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "32"
    return "bf16-mixed" if torch.backends.cpu.get_cpu_capability() in ("AVX512", "AMX") else "32"


def last_checkpoint(out_dir: str | Path) -> Path:
    """Where a run in ``out_dir`` keeps the checkpoint it resumes from."""
    return Path(out_dir) / CHECKPOINTS / LAST


@dataclass
class FitResult:
    """What one call of :func:`fit` did.

    Attributes:
        trainer: the Lightning trainer (for ``is_global_zero``, ``world_size``, ``callback_metrics``).
        steps: the optimiser step reached; ``resumed_from_step``: the step this call started at.
        seconds: this call's training time; ``seconds_all_calls``: every call's (:class:`TrainingClock`).
        precision: the resolved precision.
        best: ``best.ckpt`` when a metric was monitored, else None.
        stopped_by_time: the wall-clock cap ended the run early.
    """

    trainer: L.Trainer
    steps: int
    resumed_from_step: int
    seconds: float
    seconds_all_calls: float
    precision: str
    best: Path | None
    stopped_by_time: bool

    @property
    def final_loss(self) -> float | None:
        """The last logged ``train/loss``; None when this call trained nothing."""
        loss = self.trainer.callback_metrics.get("train/loss")
        return None if loss is None else float(loss)

    def summary(self) -> dict[str, Any]:
        """The JSON-able record every run's metrics carry."""
        return {
            "final_loss": self.final_loss,
            "steps": self.steps,
            "resumed_from_step": self.resumed_from_step,
            "seconds": round(self.seconds, 3),
            "seconds_all_calls": round(self.seconds_all_calls, 3),
            "precision": self.precision,
            "stopped_by_time": self.stopped_by_time,
        }


class _BatchSamplerEpoch(Callback):
    """Lightning tells a DataLoader's ``sampler`` the epoch, not its ``batch_sampler``: do that
    too, before the epoch's batches are drawn, so batch samplers can order by (seed, epoch).
    Also at the start of a resumed fit, for which Lightning skips the epoch-start hook."""

    def on_train_start(self, trainer, pl_module) -> None:
        self.on_train_epoch_start(trainer, pl_module)

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        set_epoch = getattr(getattr(trainer.train_dataloader, "batch_sampler", None), "set_epoch", None)
        if callable(set_epoch):
            set_epoch(trainer.current_epoch)


class RunProgressBar(RichProgressBar):
    """Lightning's rich progress bar with an epoch count that reads right for a run of ``max_steps``
    (Lightning's own reads "Epoch 37/-2" there) and counts epochs from 1."""

    def _get_train_description(self, current_epoch: int) -> str:
        max_steps, max_epochs = self.trainer.max_steps, self.trainer.max_epochs
        if max_steps is not None and max_steps > 0:
            return f"Epoch {current_epoch + 1} ({max_steps:,} steps in all)"
        if max_epochs is not None and max_epochs > 0:
            return f"Epoch {current_epoch + 1}/{max_epochs}"
        return f"Epoch {current_epoch + 1}"


class _SameRun(Callback):
    """Refuses to resume a checkpoint written under other settings (another seed, data size or
    model option would silently mix two runs): the settings travel in every checkpoint, and only
    the fields of ``settings.RESUMABLE_CHANGES`` (length, cap, devices, ...) may differ."""

    def __init__(self, settings: TrainSettings):
        self.settings = settings

    def state_dict(self) -> dict[str, Any]:
        return {"settings": self.settings.comparable()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        saved, now = state.get("settings"), self.settings.comparable()
        if saved is None or saved == now:
            return
        changed = sorted(k for k in saved.keys() | now.keys() if saved.get(k) != now.get(k))
        raise VfmError(
            f"the checkpoint to resume from was written with other settings ({', '.join(changed[:4])})",
            where=f"{CHECKPOINTS}/{LAST}",
            fix="re-run with the run's own config.yaml, or start again in a new --out folder",
        )


def fit(
    module: L.LightningModule,
    settings: TrainSettings,
    out_dir: str | Path,
    *,
    train: Any = None,
    val: Any = None,
    monitor: str | None = None,
    mode: str = "max",
    callbacks: Sequence[Callback] = (),
    progress: bool = True,
    **options: Any,
) -> FitResult:
    """Train ``module`` on ``train`` (None: its own ``train_dataloader``), validating on ``val``.

    Args:
        module: the LightningModule (its ``configure_optimizers`` may use :mod:`.optim`).
        settings: the run's common settings.
        out_dir: the run folder: ``checkpoints/{last,best}.ckpt`` and ``logs/`` go there.
        monitor: a logged metric to keep the best checkpoint by (``mode`` ``"max"`` or ``"min"``).
        callbacks: the run's own callbacks.
        options: the run's further ``Trainer`` arguments (``accumulate_grad_batches``,
            ``gradient_clip_val``, ``log_every_n_steps``, ``use_distributed_sampler``, ...).

    Raises:
        VfmError: ``last.ckpt`` exists but cannot be read, does not fit ``module`` or its optimizer,
            or was written under other settings (:class:`_SameRun`).
    """
    out_dir = Path(out_dir)
    ckpt_dir = out_dir / CHECKPOINTS
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    for stale in ckpt_dir.glob(".*.tmp"):  # a write cut short by a kill; last.ckpt itself is whole
        stale.unlink(missing_ok=True)
    last = ckpt_dir / LAST
    if settings.checkpoint_every_n_steps:
        keep_last = ModelCheckpoint(
            dirpath=ckpt_dir,
            every_n_train_steps=settings.checkpoint_every_n_steps,
            save_top_k=0,
            save_last=True,
            enable_version_counter=False,
        )
    else:  # every epoch (a monitored checkpoint's save_last only refreshes when the metric improves)
        keep_last = ModelCheckpoint(dirpath=ckpt_dir, filename="last", enable_version_counter=False)
    best = (
        ModelCheckpoint(dirpath=ckpt_dir, filename="best", monitor=monitor, mode=mode, enable_version_counter=False)
        if monitor
        else None
    )
    clock = TrainingClock()
    # the wall-clock cap: Lightning's Timer, whose elapsed time travels in the checkpoints
    timer = Timer(duration=timedelta(minutes=settings.max_minutes), interval="step") if settings.max_minutes else None
    precision = resolve_precision(settings.precision)
    options.setdefault("log_every_n_steps", 1)
    trainer = L.Trainer(
        max_steps=settings.max_steps or -1,
        max_epochs=-1 if settings.max_steps else settings.max_epochs,
        accelerator=settings.accelerator,
        devices=settings.devices,
        num_nodes=settings.num_nodes,
        strategy=settings.strategy,
        precision=cast(Any, precision),
        logger=CSVLogger(out_dir, name="logs"),
        # best before keep_last: Lightning runs checkpoint callbacks in order, and last.ckpt must hold
        # the best score of the epoch it saves
        callbacks=[
            *([best] if best else []),
            keep_last,
            *([timer] if timer else []),
            clock,
            _BatchSamplerEpoch(),
            _SameRun(settings),
            *([RunProgressBar()] if progress else []),
            *callbacks,
        ],
        plugins=[AtomicCheckpointIO()],
        num_sanity_val_steps=0,
        enable_progress_bar=progress,
        enable_model_summary=False,
        **options,
    )
    with warnings.catch_warnings():
        for message in _QUIET:
            warnings.filterwarnings("ignore", message)
        try:
            trainer.fit(module, train, val, ckpt_path=resumable_checkpoint(module, last), weights_only=True)
        except ValueError as err:  # Lightning's optimizer load: another parameter-group layout
            if "parameter group" not in str(err):
                raise
            raise VfmError(
                "the checkpoint's optimizer state does not fit this model's parameter groups (a vfm version "
                "whose optimizer changed wrote it)",
                where=str(last),
                fix="start again in a new --out folder, or delete the checkpoint",
            ) from None
        trainer.save_checkpoint(last, weights_only=False)  # with optimiser and loop state, to resume

    stopped_by_time = timer is not None and trainer.should_stop  # nothing else stops a run early
    if stopped_by_time:
        log.warning(
            "training stopped by the wall-clock cap of %s minutes at step %d (epoch %d): the model may be "
            "under-trained; raise max_minutes or set it to null",
            settings.max_minutes,
            trainer.global_step,
            trainer.current_epoch,
        )
    trained = clock.start_step is not None  # False when the checkpoint had already reached the end
    return FitResult(
        trainer=trainer,
        steps=int(trainer.global_step),
        resumed_from_step=int(clock.start_step if trained else trainer.global_step),
        seconds=clock.this_call(),
        seconds_all_calls=clock.seconds(),
        precision=precision,
        best=Path(best.best_model_path) if best and best.best_model_path else None,
        stopped_by_time=stopped_by_time,
    )
