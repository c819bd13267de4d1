"""MAE pretraining with Lightning: the module owns the data order, optimiser and schedule, the Trainer the rest.

``pretrain_mae`` trains on an in-memory array of preprocessed images, checkpoints into
``out_dir/checkpoints/`` (resuming from ``last.ckpt`` when it is there) and writes the
artifacts a fine-tuning run needs: ``encoder.safetensors`` + ``encoder.json``, the full
``mae.safetensors`` and a ``reconstruction.png`` to look at.

Every random choice of a step is a pure function of the seed and of what the step trains on,
so a run is reproducible across a kill and across device counts:

- the data order of epoch ``e`` is ``default_rng([seed, e]).permutation(N)``, cut into global
  batches that ranks split in order (``EpochSampler``); its position is checkpointed;
- each visit of an image has a key ``epoch * N + index``; its masking noise and augmentation
  are drawn from ``(seed, key)``, never from a process-wide RNG.

A run killed at any point resumes from ``last.ckpt`` to the same weights as a run never
stopped, and ``devices=2`` with batch ``B`` trains (up to float rounding of the gradient
all-reduce) the same model as one device with batch ``2B``.
"""

from __future__ import annotations

import io
import math
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.plugins import TorchCheckpointIO
from matplotlib.figure import Figure
from safetensors.torch import save

from vfm.platform.errors import VfmError
from vfm.platform.fileio import atomic_write_bytes, atomic_write_json
from vfm.pretrain.fundus_transforms import augment_batch, mae_augment
from vfm.pretrain.mae import MaeConfig, MaskedAutoencoderViT

_NO_DECAY = {"cls_token", "pos_embed", "mask_token", "decoder_pos_embed"}
_MASK, _AUGMENT = 0, 1  # the two random streams of one image visit


@dataclass
class PretrainSettings:
    """How to train. Set ``max_steps`` or ``max_epochs`` (steps win when both are set).

    ``batch_size`` is per device (capped at N / devices for tiny data sets). ``precision="auto"``
    picks ``"bf16-mixed"`` on a CUDA GPU that supports bf16 or on a CPU whose
    ``torch.backends.cpu.get_cpu_capability()`` is AVX512 or AMX, else ``"32"``. ``augment``
    applies MAE's random resized crop (0.2-1.0 of the area) and horizontal flip to every image
    at every step. ``figure_every_n_epochs`` writes ``reconstructions/epoch_NNNN.png``; 0 writes
    only the final ``reconstruction.png``. ``compile`` names a ``torch.compile`` backend for the
    training forward pass (``"inductor"`` on a GPU: on an H200 this trainer's ViT-B step at
    batch 256 ran 1.31x faster, see docs/results/performance.md); None runs eager. Only the
    training step is compiled, so the weights, checkpoints and exports are the same either way.
    """

    max_steps: int | None = 1000
    max_epochs: int | None = None
    batch_size: int = 64
    base_lr: float = 1.5e-4
    warmup_steps: int = 100
    weight_decay: float = 0.05
    accumulate_grad_batches: int = 1
    precision: str = "auto"
    devices: int | str = "auto"
    accelerator: str = "auto"
    strategy: str = "auto"
    checkpoint_every_n_steps: int = 500
    seed: int = 0
    augment: bool = False
    figure_every_n_epochs: int = 1
    compile: str | None = None

    def __post_init__(self):
        if self.max_steps is None and self.max_epochs is None:
            raise VfmError("neither max_steps nor max_epochs is set", where="PretrainSettings",
                           fix="set max_steps (e.g. 1000) or max_epochs")
        if self.precision not in ("auto", "32", "bf16-mixed"):
            raise VfmError(f"unknown precision {self.precision!r}", where="PretrainSettings.precision",
                           fix='use "auto", "32" or "bf16-mixed"')
        if self.seed < 0:
            raise VfmError(f"seed {self.seed} is negative", where="PretrainSettings.seed", fix="use a seed >= 0")
        if self.compile is not None and self.compile not in torch.compiler.list_backends(exclude_tags=()):
            raise VfmError(f"unknown torch.compile backend {self.compile!r}", where="PretrainSettings.compile",
                           fix="use null (eager), inductor, or another name in torch.compiler.list_backends()")


def resolve_precision(precision: str) -> str:
    """``"auto"`` -> ``"bf16-mixed"`` where bf16 is fast (see ``PretrainSettings``), else ``"32"``."""
    if precision != "auto":
        return precision
    if torch.cuda.is_available():
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "32"
    return "bf16-mixed" if torch.backends.cpu.get_cpu_capability() in ("AVX512", "AMX") else "32"


def lr_lambda(warmup_steps: int, total_steps: int):
    """Multiplier of the peak lr at optimiser step ``s``: linear warmup, then cosine to zero."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor


def masking_noise(keys: torch.Tensor, seed: int, length: int) -> torch.Tensor:
    """Masking noise for image visits ``keys`` [N] -> float32 [N, L]; row i depends only on (seed, keys[i])."""
    return torch.from_numpy(np.stack(
        [np.random.default_rng([seed, key, _MASK]).random(length, dtype=np.float32) for key in keys.tolist()]))


def augment_seeds(keys: torch.Tensor, seed: int) -> list[int]:
    """One 32-bit augmentation seed per image visit in ``keys`` [N], from (seed, key) only."""
    return [int(np.random.SeedSequence([seed, key, _AUGMENT]).generate_state(1)[0]) for key in keys.tolist()]


class EpochSampler:
    """Which images one rank trains on at each step; resumable mid-epoch.

    Epoch ``e`` visits the N images in the order ``default_rng([seed, e]).permutation(N)``, cut
    into ``len(self)`` global batches of ``batch_size * world_size`` (the rest is dropped); rank
    ``r`` takes the ``r``-th ``batch_size`` slice of each global batch. One process with batch
    ``2B`` therefore trains on exactly what two processes with batch ``B`` train on together.
    Lightning calls ``set_epoch`` at each epoch start (as on a ``DistributedSampler``) and keeps
    ``state_dict()`` in every checkpoint.
    """

    def __init__(self, n: int, batch_size: int, seed: int, rank: int = 0, world_size: int = 1):
        self.n, self.batch_size, self.seed, self.rank, self.world_size = n, batch_size, seed, rank, world_size
        self.epoch, self.consumed = 0, 0  # batches of this epoch handed out

    def __len__(self) -> int:
        return self.n // (self.batch_size * self.world_size)

    def set_epoch(self, epoch: int) -> None:
        if epoch != self.epoch:
            self.epoch, self.consumed = epoch, 0

    def __iter__(self) -> Iterator[np.ndarray]:
        """Yields this rank's image indices int64 [B] for each remaining batch of the epoch."""
        order = np.random.default_rng([self.seed, self.epoch]).permutation(self.n)  # [N]
        steps = len(self)
        batches = order[: steps * self.world_size * self.batch_size].reshape(steps, self.world_size, -1)[:, self.rank]
        while self.consumed < steps:
            self.consumed += 1  # before the step runs: a checkpoint taken after it resumes with the next batch
            yield batches[self.consumed - 1]  # [B]

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "consumed": self.consumed}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.epoch, self.consumed = state["epoch"], state["consumed"]


class ImageBatches:
    """Batches ``(imgs [B, 3, S, S], keys int64 [B])`` of in-memory images in an ``EpochSampler``'s order.

    ``keys = epoch * N + index`` names each visit of an image, from which its masking noise and
    augmentation are drawn. Lightning resumes it through ``state_dict``.
    """

    def __init__(self, images: torch.Tensor, sampler: EpochSampler):
        self.images, self.sampler = images, sampler

    def __len__(self) -> int:
        return len(self.sampler)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for index in self.sampler:
            keys = self.sampler.epoch * self.sampler.n + index  # [B]
            yield self.images[torch.from_numpy(index)], torch.from_numpy(keys)  # [B, 3, S, S], [B]

    def state_dict(self) -> dict[str, int]:
        return self.sampler.state_dict()

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.sampler.load_state_dict(state)


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
    """Seconds of training over every call of a resumed run: the time of the earlier calls travels
    in the checkpoint (callback state), so a run killed and resumed reports its whole training
    time, not only the last call's. Time after the last checkpoint of a killed call is lost with it."""

    def __init__(self):
        self.before = 0.0
        self.started: float | None = None
        self.ended: float | None = None

    def on_train_start(self, trainer, pl_module) -> None:
        self.started = time.perf_counter()

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
    if (result["steps"] > result["resumed_from_step"] or not isinstance(previous, dict)
            or previous.get("steps") != result["steps"]):
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
    fix = (f"resume with the settings and vfm version that wrote it, or start again: a new --out folder, "
           f"or delete {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
    except Exception as err:  # a damaged file: zip, unpickling or key errors
        raise VfmError(f"cannot read the checkpoint to resume from ({str(err).splitlines()[0][:120]})",
                       where=str(path), fix=fix) from None
    own = module.state_dict()
    missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    reshaped = sorted(k for k in set(own) & set(state) if tuple(own[k].shape) != tuple(state[k].shape))
    if missing or unexpected or reshaped:
        raise VfmError(f"the checkpoint to resume from does not fit this model (missing {missing[:2]}, "
                       f"unexpected {unexpected[:2]}, other shapes {reshaped[:2]})", where=str(path), fix=fix)
    return path


class MaeModule(L.LightningModule):
    def __init__(self, mae: MaeConfig, settings: PretrainSettings, images: torch.Tensor):
        super().__init__()
        self.model = MaskedAutoencoderViT(mae)
        # a compiled bound method, not a submodule: the state dict keeps the model's own keys
        self.compiled_forward = (torch.compile(self.model.forward, backend=settings.compile)
                                 if settings.compile else None)
        self.settings = settings
        self.images = images  # [N, 3, S, S] on the CPU; Lightning moves each batch to the device
        self.augment = mae_augment(mae.img_size) if settings.augment else None
        self.start_step: int | None = None  # the global step when this fit began training

    @property
    def batch_size(self) -> int:
        """Images per device and step: ``settings.batch_size``, capped at N / devices."""
        return min(self.settings.batch_size, len(self.images) // self.trainer.world_size)

    def train_dataloader(self) -> ImageBatches:
        if self.batch_size == 0:
            raise VfmError(f"{len(self.images)} images cannot fill a batch on {self.trainer.world_size} devices",
                           where="pretrain_mae(images)", fix="use more images or fewer devices")
        s = self.settings
        sampler = EpochSampler(len(self.images), self.batch_size, s.seed, self.global_rank, self.trainer.world_size)
        return ImageBatches(self.images, sampler)

    def on_after_batch_transfer(self, batch, dataloader_idx):
        """Augment on the device the batch was moved to."""
        imgs, keys = batch  # [B, 3, S, S], [B]
        if self.augment is not None:
            imgs = augment_batch(self.augment, imgs, augment_seeds(keys.cpu(), self.settings.seed))
        return imgs, keys

    def training_step(self, batch, batch_idx):
        imgs, keys = batch  # [B, 3, S, S], [B]
        noise = masking_noise(keys.cpu(), self.settings.seed, self.model.patch_embed.num_patches)  # [B, L]
        loss, _, _ = (self.compiled_forward or self.model)(imgs, noise=noise.to(imgs.device))
        self.log("train/loss", loss, prog_bar=True, sync_dist=True)  # the mean over all devices' batches
        self.log("train/lr", self.lr_schedulers().get_last_lr()[0])
        return loss

    def on_train_start(self):
        self.start_step = self.global_step

    def configure_optimizers(self):
        s = self.settings
        effective_batch = self.batch_size * s.accumulate_grad_batches * self.trainer.world_size
        lr = s.base_lr * effective_batch / 256
        decay, no_decay = [], []
        for name, p in self.model.named_parameters():
            if p.requires_grad:
                (no_decay if p.ndim <= 1 or name in _NO_DECAY else decay).append(p)
        optimizer = torch.optim.AdamW(
            [{"params": decay, "weight_decay": s.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=lr, betas=(0.9, 0.95))
        total = int(self.trainer.estimated_stepping_batches)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(s.warmup_steps, total))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


@torch.no_grad()
def save_reconstruction_figure(model: MaskedAutoencoderViT, imgs: torch.Tensor, path: Path,
                               mean: list[float] | None = None, std: list[float] | None = None,
                               seed: int = 0) -> None:
    """One row per image: original | masked | reconstruction (prediction with visible patches pasted in).

    imgs: [N, 3, S, S] as the model sees them; un-normalised with ``mean``/``std`` when given,
    else scaled by each original's min/max. The masks come from ``seed``: the same at every call.
    """
    was_training = model.training
    model.eval()
    noise = masking_noise(torch.arange(len(imgs)), seed, model.patch_embed.num_patches)  # [N, L]
    _, pred, mask = model(imgs, noise=noise.to(imgs.device))  # pred [N, L, p*p*3], mask [N, L]
    model.train(was_training)
    imgs, pred, mask = imgs.float().cpu(), pred.float().cpu(), mask.float().cpu()  # drawn on the CPU
    patch_mask = model.unpatchify(mask[..., None].expand_as(pred))  # [N, 3, S, S], 1 = removed
    recon = model.pred_to_pixels(imgs, pred) * patch_mask + imgs * (1 - patch_mask)  # [N, 3, S, S]
    masked = imgs * (1 - patch_mask)  # [N, 3, S, S]
    if mean is not None and std is not None:
        m, s = torch.tensor(mean).view(1, -1, 1, 1), torch.tensor(std).view(1, -1, 1, 1)
        to_rgb = lambda x: x * s + m  # noqa: E731
    else:
        lo = imgs.amin(dim=(1, 2, 3), keepdim=True)  # [N, 1, 1, 1]
        hi = imgs.amax(dim=(1, 2, 3), keepdim=True)
        to_rgb = lambda x: (x - lo) / (hi - lo).clamp_min(1e-6)  # noqa: E731
    columns = {"original": to_rgb(imgs), "masked": to_rgb(masked) * (1 - patch_mask) + 0.5 * patch_mask,
               "reconstruction": to_rgb(recon)}

    fig = Figure(figsize=(3 * len(columns), 3 * len(imgs)))
    axes = fig.subplots(len(imgs), len(columns), squeeze=False)
    for col, (title, batch) in enumerate(columns.items()):
        for row in range(len(imgs)):
            ax = axes[row][col]
            ax.imshow(batch[row].permute(1, 2, 0).clamp(0, 1).numpy())
            ax.set_axis_off()
            if row == 0:
                ax.set_title(title)
    fig.tight_layout()
    png = io.BytesIO()
    fig.savefig(png, format="png", dpi=80)
    atomic_write_bytes(path, png.getvalue())


class _FigureEveryNEpochs(Callback):
    """``reconstructions/epoch_NNNN.png`` of 4 training images every ``every`` epochs, on rank zero."""

    def __init__(self, imgs: torch.Tensor, every: int, out_dir: Path, meta: dict):
        self.imgs, self.every, self.out_dir, self.meta = imgs, every, out_dir, meta

    def on_train_epoch_end(self, trainer, pl_module):
        if self.every and (trainer.current_epoch + 1) % self.every == 0 and trainer.is_global_zero:
            path = self.out_dir / "reconstructions" / f"epoch_{trainer.current_epoch + 1:04d}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            save_reconstruction_figure(pl_module.model, self.imgs.to(pl_module.device), path,
                                       self.meta.get("mean"), self.meta.get("std"))


def pretrain_mae(images: np.ndarray, mae: MaeConfig, settings: PretrainSettings, out_dir: Path,
                 progress: bool = True, extra_meta: dict | None = None) -> dict:
    """Pretrain an MAE on ``images`` [N, 3, S, S] float32 (already preprocessed).

    Writes into ``out_dir``: ``checkpoints/last.ckpt`` (atomically, every
    ``checkpoint_every_n_steps`` and at the end; a later call resumes from it exactly),
    ``logs/`` (CSV: ``train/loss``, ``train/lr`` per step), ``encoder.safetensors`` (timm ViT
    names), ``encoder.json`` (``{"encoder": VisionTransformer kwargs, "mae": MaeConfig,
    **extra_meta}``), ``mae.safetensors`` (full model), ``reconstruction.png`` and
    ``reconstructions/epoch_NNNN.png``.

    Returns ``{"final_loss", "steps", "resumed_from_step", "seconds" (this call's),
    "seconds_all_calls" (every call's, :class:`TrainingClock`), "images_per_s", "precision", "files"}``.
    """
    out_dir = Path(out_dir)
    meta = dict(extra_meta or {})
    expected = (mae.in_chans, mae.img_size, mae.img_size)
    if images.ndim != 4 or tuple(images.shape[1:]) != expected:
        raise VfmError(f"images have shape {tuple(images.shape)}, expected [N, {', '.join(map(str, expected))}]",
                       where="pretrain_mae(images)", fix="resize the images to the MaeConfig.img_size")
    ckpt_dir = out_dir / "checkpoints"
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    last = ckpt_dir / "last.ckpt"
    for stale in ckpt_dir.glob(".*.tmp"):  # a write cut short by a kill; last.ckpt itself is whole
        stale.unlink(missing_ok=True)

    L.seed_everything(settings.seed, verbose=False)  # the model's initial weights
    data = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))  # [N, 3, S, S]
    module = MaeModule(mae, settings, data)
    precision = resolve_precision(settings.precision)
    clock = TrainingClock()
    trainer = L.Trainer(
        max_steps=settings.max_steps or -1,
        max_epochs=-1 if settings.max_steps else settings.max_epochs,
        accelerator=settings.accelerator, devices=settings.devices, strategy=settings.strategy,
        precision=precision, accumulate_grad_batches=settings.accumulate_grad_batches,
        logger=CSVLogger(out_dir, name="logs"), log_every_n_steps=1,
        callbacks=[ModelCheckpoint(dirpath=ckpt_dir, every_n_train_steps=settings.checkpoint_every_n_steps,
                                   save_top_k=0, save_last=True, enable_version_counter=False),
                   _FigureEveryNEpochs(data[:4], settings.figure_every_n_epochs, out_dir, meta), clock],
        plugins=[AtomicCheckpointIO()], enable_progress_bar=progress, enable_model_summary=False)
    trainer.fit(module, ckpt_path=resumable_checkpoint(module, last), weights_only=True)
    trainer.save_checkpoint(last, weights_only=False)  # with optimiser and loop state, to resume

    model = module.model.cpu().eval()
    trained = module.start_step is not None  # False when the checkpoint had already reached max_steps
    start_step = module.start_step if trained else trainer.global_step
    seconds = clock.this_call()
    steps_run = trainer.global_step - start_step
    files = []
    if trainer.is_global_zero:
        atomic_write_bytes(out_dir / "encoder.safetensors",
                           save({k: v.contiguous() for k, v in model.encoder_state_dict().items()}))
        atomic_write_bytes(out_dir / "mae.safetensors",
                           save({k: v.detach().contiguous() for k, v in model.state_dict().items()}))
        atomic_write_json(out_dir / "encoder.json", {"encoder": model.encoder_config(), "mae": asdict(mae), **meta})
        save_reconstruction_figure(model, data[:4], out_dir / "reconstruction.png", meta.get("mean"), meta.get("std"))
        files = [str(out_dir / n) for n in ("encoder.safetensors", "encoder.json", "mae.safetensors",
                                            "reconstruction.png", "checkpoints/last.ckpt")]
    loss = trainer.callback_metrics.get("train/loss")
    return {
        "final_loss": float(loss) if loss is not None else None,  # the last step's loss; None if none ran
        "steps": int(trainer.global_step),
        "resumed_from_step": int(start_step),
        "seconds": round(seconds, 3),
        "seconds_all_calls": round(clock.seconds(), 3),
        "images_per_s": round(steps_run * module.batch_size * settings.accumulate_grad_batches
                              * trainer.world_size / max(seconds, 1e-9), 2),
        "precision": precision,
        "files": files,
    }
