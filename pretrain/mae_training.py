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
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback
from matplotlib.figure import Figure
from safetensors.torch import save

from vfm.platform.errors import VfmError
from vfm.platform.fileio import atomic_write_bytes, atomic_write_json
from vfm.platform.training.optim import adamw_with_schedule, decay_groups
from vfm.platform.training.sampling import EpochSampler
from vfm.platform.training.settings import TrainSettings
from vfm.platform.training.trainer import fit
from vfm.pretrain.fundus_transforms import augment_batch, mae_augment
from vfm.pretrain.mae import MaeConfig, MaskedAutoencoderViT

_NO_DECAY = {"cls_token", "pos_embed", "mask_token", "decoder_pos_embed"}
_MASK, _AUGMENT = 0, 1  # the two random streams of one image visit


@dataclass
class PretrainSettings(TrainSettings):
    """How to pretrain: :class:`TrainSettings` (length, precision, devices, checkpoints) plus the MAE recipe.

    ``batch_size`` is per device (capped at N / devices for tiny data sets). ``augment``
    applies MAE's random resized crop (0.2-1.0 of the area) and horizontal flip to every image
    at every step. ``figure_every_n_epochs`` writes ``reconstructions/epoch_NNNN.png``; 0 writes
    only the final ``reconstruction.png``. ``compile`` names a ``torch.compile`` backend for the
    training forward pass (``"inductor"`` on a GPU, see docs/results/performance.md); None runs
    eager. Only the training step is compiled, so the weights, checkpoints and exports are the
    same either way.
    """

    max_steps: int | None = 1000
    batch_size: int = 64
    base_lr: float = 1.5e-4
    warmup_steps: int = 100
    weight_decay: float = 0.05
    accumulate_grad_batches: int = 1
    augment: bool = False
    figure_every_n_epochs: int = 1
    compile: str | None = None

    RESUMABLE_CHANGES = TrainSettings.RESUMABLE_CHANGES | {"figure_every_n_epochs", "compile"}

    def __post_init__(self) -> None:
        super().__post_init__()
        self.check(
            ("batch_size", self.batch_size >= 1, "a batch size >= 1"),
            ("base_lr", self.base_lr > 0, "a learning rate > 0, e.g. 1.5e-4"),
            ("warmup_steps", self.warmup_steps >= 0, "a number of steps >= 0"),
            ("accumulate_grad_batches", self.accumulate_grad_batches >= 1, "a count >= 1"),
        )
        if self.compile is not None and self.compile not in torch.compiler.list_backends(exclude_tags=()):
            raise VfmError(
                f"unknown torch.compile backend {self.compile!r}",
                where="PretrainSettings.compile",
                fix="use null (eager), inductor, or another name in torch.compiler.list_backends()",
            )


def masking_noise(keys: torch.Tensor, seed: int, length: int) -> torch.Tensor:
    """Masking noise for image visits ``keys`` [N] -> float32 [N, L]; row i depends only on (seed, keys[i])."""
    return torch.from_numpy(
        np.stack([np.random.default_rng([seed, key, _MASK]).random(length, dtype=np.float32) for key in keys.tolist()])
    )


def augment_seeds(keys: torch.Tensor, seed: int) -> list[int]:
    """One 32-bit augmentation seed per image visit in ``keys`` [N], from (seed, key) only."""
    return [int(np.random.SeedSequence([seed, key, _AUGMENT]).generate_state(1)[0]) for key in keys.tolist()]


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


class MaeModule(L.LightningModule):
    def __init__(self, mae: MaeConfig, settings: PretrainSettings, images: torch.Tensor):
        super().__init__()
        self.model = MaskedAutoencoderViT(mae)
        # a compiled bound method, not a submodule: the state dict keeps the model's own keys
        self.compiled_forward = (
            torch.compile(self.model.forward, backend=settings.compile) if settings.compile else None
        )
        self.settings = settings
        self.images = images  # [N, 3, S, S] on the CPU; Lightning moves each batch to the device
        self.augment = mae_augment(mae.img_size) if settings.augment else None

    @property
    def batch_size(self) -> int:
        """Images per device and step: ``settings.batch_size``, capped at N / devices."""
        return min(self.settings.batch_size, len(self.images) // self.trainer.world_size)

    def train_dataloader(self) -> ImageBatches:
        if self.batch_size == 0:
            raise VfmError(
                f"{len(self.images)} images cannot fill a batch on {self.trainer.world_size} devices",
                where="pretrain_mae(images)",
                fix="use more images or fewer devices",
            )
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

    def configure_optimizers(self):
        s = self.settings
        effective_batch = self.batch_size * s.accumulate_grad_batches * self.trainer.world_size
        lr = s.base_lr * effective_batch / 256
        groups = decay_groups(
            self.model.named_parameters(), weight_decay=s.weight_decay, lr=lr, no_decay=_NO_DECAY.__contains__
        )
        return adamw_with_schedule(
            groups,
            lr=lr,
            betas=(0.9, 0.95),
            warmup_steps=s.warmup_steps,
            total_steps=int(self.trainer.estimated_stepping_batches),
        )


@torch.no_grad()
def save_reconstruction_figure(
    model: MaskedAutoencoderViT,
    imgs: torch.Tensor,
    path: Path,
    mean: list[float] | None = None,
    std: list[float] | None = None,
    seed: int = 0,
) -> None:
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
    columns = {
        "original": to_rgb(imgs),
        "masked": to_rgb(masked) * (1 - patch_mask) + 0.5 * patch_mask,
        "reconstruction": to_rgb(recon),
    }

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
            save_reconstruction_figure(
                pl_module.model, self.imgs.to(pl_module.device), path, self.meta.get("mean"), self.meta.get("std")
            )


def pretrain_mae(
    images: np.ndarray,
    mae: MaeConfig,
    settings: PretrainSettings,
    out_dir: Path,
    progress: bool = True,
    extra_meta: dict | None = None,
) -> dict:
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
        raise VfmError(
            f"images have shape {tuple(images.shape)}, expected [N, {', '.join(map(str, expected))}]",
            where="pretrain_mae(images)",
            fix="resize the images to the MaeConfig.img_size",
        )
    L.seed_everything(settings.seed, verbose=False)  # the model's initial weights
    data = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))  # [N, 3, S, S]
    module = MaeModule(mae, settings, data)
    run = fit(
        module,
        settings,
        out_dir,
        progress=progress,
        callbacks=[_FigureEveryNEpochs(data[:4], settings.figure_every_n_epochs, out_dir, meta)],
        accumulate_grad_batches=settings.accumulate_grad_batches,
    )

    model = module.model.cpu().eval()
    files = []
    if run.trainer.is_global_zero:
        atomic_write_bytes(
            out_dir / "encoder.safetensors", save({k: v.contiguous() for k, v in model.encoder_state_dict().items()})
        )
        atomic_write_bytes(
            out_dir / "mae.safetensors", save({k: v.detach().contiguous() for k, v in model.state_dict().items()})
        )
        atomic_write_json(out_dir / "encoder.json", {"encoder": model.encoder_config(), "mae": asdict(mae), **meta})
        save_reconstruction_figure(model, data[:4], out_dir / "reconstruction.png", meta.get("mean"), meta.get("std"))
        files = [
            str(out_dir / n)
            for n in (
                "encoder.safetensors",
                "encoder.json",
                "mae.safetensors",
                "reconstruction.png",
                "checkpoints/last.ckpt",
            )
        ]
    images_run = (run.steps - run.resumed_from_step) * module.batch_size * settings.accumulate_grad_batches
    return {
        **run.summary(),
        "images_per_s": round(images_run * run.trainer.world_size / max(run.seconds, 1e-9), 2),
        "files": files,
    }
