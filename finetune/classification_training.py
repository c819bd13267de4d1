"""Fine-tuning a ViT image classifier with Lightning (RETFound recipe, sized for small data).

Full fine-tuning uses layer-wise lr decay (timm's ``param_groups_layer_decay``), drop-path,
label smoothing and a warmup + cosine schedule; linear probing trains the head only. The best
epoch by validation macro AUROC is kept and written as ``classifier.safetensors``.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger
from timm.optim import param_groups_layer_decay
from torch.utils.data import DataLoader, TensorDataset

from vfm.finetune.metrics import MetricsFn, classification_metrics
from vfm.finetune.vit_classifier import ModelBuilder, build_vit_classifier, load_encoder_weights, save_classifier
from vfm.platform.errors import VfmError
from vfm.platform.fileio import atomic_write_json
from vfm.pretrain.mae_training import lr_lambda, resolve_precision

MONITOR = "val/selection_score"


@dataclass
class FinetuneSettings:
    """How to fine-tune. The peak lr is ``base_lr * batch_size * devices / 256`` (RETFound's
    base_lr 5e-3); ``precision="auto"`` as in ``PretrainSettings``.

    mode: "full" (all layers, layer decay) or "linear" (head only, no drop-path).
    class_weights: None, or "balanced" (weight of class c = N / (C * count_c)).
    augment: random horizontal flips and a random resized crop (80-100 % of the area) per image.
    """

    mode: str = "full"
    max_epochs: int = 15
    batch_size: int = 32
    base_lr: float = 5e-3
    layer_decay: float = 0.65
    weight_decay: float = 0.05
    drop_path: float = 0.1
    label_smoothing: float = 0.1
    warmup_epochs: float = 1.0
    class_weights: str | None = None
    augment: bool = True
    seed: int = 0
    precision: str = "auto"
    devices: int | str = "auto"
    accelerator: str = "auto"
    strategy: str = "auto"
    num_workers: int = 0

    def __post_init__(self):
        checks = [("mode", self.mode in ("full", "linear"), '"full" or "linear"'),
                  ("class_weights", self.class_weights in (None, "balanced"), 'null or "balanced"'),
                  ("precision", self.precision in ("auto", "32", "bf16-mixed"), '"auto", "32" or "bf16-mixed"'),
                  ("layer_decay", 0.0 < self.layer_decay <= 1.0, "a value in (0, 1]")]
        for field, ok, expected in checks:
            if not ok:
                raise VfmError(f"invalid {field} {getattr(self, field)!r}", where=f"FinetuneSettings.{field}",
                               fix=f"use {expected}")


def augment_batch(x: torch.Tensor, min_area: float = 0.8) -> torch.Tensor:
    """Random horizontal flip + random resized crop (square, ``min_area``..1 of the image) per image.

    x: [N, C, S, S] -> [N, C, S, S], one affine resampling (bilinear) for both.
    """
    n = x.shape[0]
    side = torch.empty(n, device=x.device).uniform_(min_area, 1.0).sqrt()  # [N], crop side / image side
    flip = torch.where(torch.rand(n, device=x.device) < 0.5, -1.0, 1.0)  # [N]
    shift = (torch.rand(n, 2, device=x.device) * 2 - 1) * (1 - side)[:, None]  # [N, 2], crop centre
    theta = torch.zeros(n, 2, 3, device=x.device)  # [N, 2, 3], output -> input coordinates
    theta[:, 0, 0], theta[:, 1, 1], theta[:, :, 2] = side * flip, side, shift
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)  # [N, S, S, 2]
    return F.grid_sample(x, grid.to(x.dtype), mode="bilinear", padding_mode="border", align_corners=False)


class ClassifierModule(L.LightningModule):
    def __init__(self, model: torch.nn.Module, settings: FinetuneSettings, class_weights: torch.Tensor | None,
                 label_names: list[str], metrics_fn: MetricsFn = classification_metrics):
        super().__init__()
        self.model, self.settings, self.label_names, self.metrics_fn = model, settings, label_names, metrics_fn
        self.register_buffer("class_weights", class_weights)
        self._val_probs: list[torch.Tensor] = []
        self._val_labels: list[torch.Tensor] = []

    def training_step(self, batch, batch_idx):
        x, y = batch  # [N, 3, S, S], [N]
        if self.settings.augment:
            x = augment_batch(x)
        logits = self.model(x)  # [N, C]
        loss = F.cross_entropy(logits.float(), y, weight=self.class_weights,
                               label_smoothing=self.settings.label_smoothing)
        self.log("train/loss", loss, prog_bar=True)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self._val_probs.append(self.model(x).float().softmax(dim=-1).cpu())  # [N, C]
        self._val_labels.append(y.cpu())

    def on_validation_epoch_end(self):
        probs, labels = torch.cat(self._val_probs), torch.cat(self._val_labels)
        self._val_probs.clear()
        self._val_labels.clear()
        m = self.metrics_fn(labels.numpy(), probs.numpy(), self.label_names)
        auroc = m["auroc_macro_ovr"]
        self.log_dict({"val/auroc_macro_ovr": float("nan") if auroc is None else auroc,
                       "val/accuracy": m["accuracy"], "val/qwk": float("nan") if m["qwk"] is None else m["qwk"],
                       MONITOR: m["accuracy"] if auroc is None else auroc}, prog_bar=True)

    def configure_optimizers(self):
        s = self.settings
        lr = s.base_lr * s.batch_size * self.trainer.world_size / 256
        groups = param_groups_layer_decay(self.model, weight_decay=s.weight_decay, layer_decay=s.layer_decay,
                                          no_weight_decay_list=self.model.no_weight_decay())
        for group in groups:
            group["lr"] = lr * group.pop("lr_scale")
        optimizer = torch.optim.AdamW(groups, lr=lr)
        total = int(self.trainer.estimated_stepping_batches)
        warmup = round(s.warmup_epochs * total / max(1, self.trainer.max_epochs))
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(warmup, total))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


@torch.no_grad()
def predict_proba(model: torch.nn.Module, images: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """Class probabilities float32 [N, C] for images float32 [N, 3, S, S], in eval mode."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    probs = [model(torch.from_numpy(np.ascontiguousarray(images[i:i + batch_size], dtype=np.float32)).to(device))
             .float().softmax(dim=-1).cpu() for i in range(0, len(images), batch_size)]  # [n, C] each
    model.train(was_training)
    return torch.cat(probs).numpy()


def _class_weights(labels: np.ndarray, num_classes: int, how: str | None) -> torch.Tensor | None:
    if how is None:
        return None
    counts = np.bincount(labels, minlength=num_classes).clip(min=1)  # [C]
    return torch.tensor(len(labels) / (num_classes * counts), dtype=torch.float32)


def _check_split(split, num_classes: int, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    images, labels = split
    if images.ndim != 4 or images.shape[1] != 3 or len(images) != len(labels) or len(labels) == 0:
        raise VfmError(f"{name} images {list(images.shape)} do not match {len(labels)} labels",
                       where=f"finetune_classifier({name})", fix="pass (float32 [N, 3, S, S], int64 [N])")
    if labels.min() < 0 or labels.max() >= num_classes:
        raise VfmError(f"{name} labels must lie in 0..{num_classes - 1}", where=f"finetune_classifier({name})")
    return torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32)), torch.from_numpy(labels.astype(np.int64))


def finetune_classifier(train: tuple[np.ndarray, np.ndarray], val: tuple[np.ndarray, np.ndarray], *,
                        encoder_cfg: dict, num_classes: int, settings: FinetuneSettings, out_dir: Path,
                        pretrained: Path | None, label_names: list[str], progress: bool = True,
                        build_model: ModelBuilder = build_vit_classifier,
                        metrics_fn: MetricsFn = classification_metrics) -> dict:
    """Fine-tune a ViT classifier and keep its best epoch by validation macro AUROC.

    train, val: (images float32 [N, 3, S, S], labels int64 [N]). ``pretrained``: an encoder
    checkpoint for ``load_encoder_weights`` (None trains from scratch). Resumes from
    ``out_dir/checkpoints/last.ckpt`` when present. ``build_model`` and ``metrics_fn`` are the
    plugin's ``model`` and ``metrics`` components (``metrics_fn`` must return at least
    ``auroc_macro_ovr``, ``accuracy`` and ``qwk``).

    Writes into ``out_dir``: ``checkpoints/{best,last}.ckpt``, ``logs/`` (CSV),
    ``classifier.safetensors`` + ``classifier.json`` (best epoch) and ``metrics.json`` (its
    ``classification_metrics`` on ``val`` plus ``best_epoch``). When the validation AUROC is
    undefined (a single class) epochs are compared by accuracy.

    Returns the metrics of ``metrics.json`` plus ``epochs``, ``seconds`` and ``encoder_load``
    (the ``load_encoder_weights`` report, or None).
    """
    out_dir = Path(out_dir)
    x_train, y_train = _check_split(train, num_classes, "train")
    x_val, y_val = _check_split(val, num_classes, "val")
    ckpt_dir = out_dir / "checkpoints"
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    last = ckpt_dir / "last.ckpt"

    L.seed_everything(settings.seed, workers=True, verbose=False)
    linear = settings.mode == "linear"
    model = build_model(encoder_cfg, num_classes, drop_path_rate=0.0 if linear else settings.drop_path)
    report = load_encoder_weights(model, pretrained) if pretrained else None
    if linear:
        for name, p in model.named_parameters():
            p.requires_grad = name.startswith("head.")
    module = ClassifierModule(model, settings, _class_weights(train[1], num_classes, settings.class_weights),
                              label_names, metrics_fn)

    loader = DataLoader(TensorDataset(x_train, y_train), batch_size=settings.batch_size, shuffle=True,
                        drop_last=len(y_train) > settings.batch_size, num_workers=settings.num_workers)
    val_loader = DataLoader(TensorDataset(x_val, y_val), batch_size=settings.batch_size,
                            num_workers=settings.num_workers)
    best = ModelCheckpoint(dirpath=ckpt_dir, filename="best", monitor=MONITOR, mode="max",
                           enable_version_counter=False)
    every_epoch = ModelCheckpoint(dirpath=ckpt_dir, filename="last", enable_version_counter=False)
    trainer = L.Trainer(
        max_epochs=settings.max_epochs, accelerator=settings.accelerator, devices=settings.devices,
        strategy=settings.strategy, precision=resolve_precision(settings.precision),
        logger=CSVLogger(out_dir, name="logs"), log_every_n_steps=1, callbacks=[best, every_epoch],
        num_sanity_val_steps=0, enable_progress_bar=progress, enable_model_summary=False)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", ".*does not have many workers.*")
        warnings.filterwarnings("ignore", ".*exists and is not empty.*")  # resuming into our own run
        trainer.fit(module, loader, val_loader, ckpt_path=last if last.exists() else None, weights_only=True)
    seconds = time.perf_counter() - start

    state = torch.load(best.best_model_path, map_location="cpu", weights_only=True)
    module.load_state_dict(state["state_dict"])
    model = module.model.cpu().eval()
    metrics = metrics_fn(y_val.numpy(), predict_proba(model, x_val.numpy()), label_names)
    metrics["best_epoch"] = int(state["epoch"]) + 1  # 1 = the first epoch
    if trainer.is_global_zero:
        save_classifier(model, encoder_cfg, num_classes, out_dir,
                        meta={"label_names": label_names, "mode": settings.mode})
        atomic_write_json(out_dir / "metrics.json", metrics)
    return {**metrics, "epochs": int(trainer.current_epoch), "seconds": round(seconds, 3), "encoder_load": report}
