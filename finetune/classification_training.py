"""Fine-tuning a ViT image classifier with Lightning (RETFound recipe, sized for small data).

Full fine-tuning uses layer-wise lr decay (timm's ``param_groups_layer_decay``), drop-path,
label smoothing and a warmup + cosine schedule; linear probing trains the head only; LoRA trains
low-rank adapters and the head, then merges the adapters (``vfm.finetune.lora``). Batches are
augmented on the device (``vfm.finetune.augment``); a stratified share of the training labels
can be used (``vfm.finetune.label_fraction``). The best epoch by validation macro AUROC is kept
and written as ``classifier.safetensors``, with validation plots (``vfm.finetune.plots``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from timm.loss import SoftTargetCrossEntropy
from timm.optim import param_groups_layer_decay
from torch.utils.data import DataLoader, TensorDataset

from vfm.finetune.augment import BatchAugment
from vfm.finetune.label_fraction import stratified_subset
from vfm.finetune.metrics import MetricsFn, classification_metrics
from vfm.finetune.plots import write_classification_plots
from vfm.finetune.vit_classifier import ModelBuilder, build_vit_classifier, load_encoder_weights, save_classifier
from vfm.platform.errors import VfmError
from vfm.platform.fileio import atomic_write_json
from vfm.platform.training.optim import adamw_with_schedule, decay_groups
from vfm.platform.training.settings import TrainSettings
from vfm.platform.training.trainer import fit

MONITOR = "val/selection_score"


@dataclass
class FinetuneSettings(TrainSettings):
    """How to fine-tune: :class:`TrainSettings` (length, precision, devices, checkpoints: every
    epoch by default) plus the recipe. The peak lr is ``base_lr * batch_size * devices / 256``
    (RETFound's base_lr 5e-3).

    mode: "full" (all layers, layer decay), "linear" (head only, no drop-path) or "lora"
        (rank-``lora_r`` adapters with scale ``lora_alpha / lora_r`` on the block linears, plus
        the head; no layer decay; merged into the saved weights).
    class_weights: None, or "balanced" (weight of class c = N / (C * count_c)).
    label_fraction: stratified share of the training labels used, in (0, 1] (seeded by ``seed``;
        at least one image per class); the validation split is always used whole.
    augment: random horizontal flips and a random resized crop (80-100 % of the area) per image.
    rand_augment: RandAugment per image, ``rand_augment_ops`` ops of strength
        ``rand_augment_magnitude`` (0..30; timm's rand-m9-n2 by default).
    mixup, cutmix: Beta alphas (0 disables); either turns the targets soft (label smoothing
        included) and the loss into soft-target cross-entropy. Not with class_weights.
    """

    max_epochs: int | None = 15
    checkpoint_every_n_steps: int | None = None
    mode: str = "full"
    batch_size: int = 32
    base_lr: float = 5e-3
    layer_decay: float = 0.65
    weight_decay: float = 0.05
    drop_path: float = 0.1
    label_smoothing: float = 0.1
    warmup_epochs: float = 1.0
    class_weights: str | None = None
    label_fraction: float = 1.0
    augment: bool = True
    rand_augment: bool = False
    rand_augment_ops: int = 2
    rand_augment_magnitude: int = 9
    mixup: float = 0.0
    cutmix: float = 0.0
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.0
    num_workers: int = 0

    RESUMABLE_CHANGES = TrainSettings.RESUMABLE_CHANGES | {"num_workers"}

    def __post_init__(self) -> None:
        super().__post_init__()
        self.check(
            ("mode", self.mode in ("full", "linear", "lora"), '"full", "linear" or "lora"'),
            ("batch_size", self.batch_size >= 1, "a batch size >= 1"),
            ("base_lr", self.base_lr > 0, "a learning rate > 0, e.g. 5e-3"),
            ("warmup_epochs", self.warmup_epochs >= 0, "epochs >= 0"),
            ("num_workers", self.num_workers >= 0, "a count >= 0"),
            ("class_weights", self.class_weights in (None, "balanced"), 'null or "balanced"'),
            ("layer_decay", 0.0 < self.layer_decay <= 1.0, "a value in (0, 1]"),
            ("label_fraction", 0.0 < self.label_fraction <= 1.0, "a value in (0, 1], e.g. 0.1 for 10 %"),
            ("rand_augment_ops", self.rand_augment_ops >= 0, "a count >= 0"),
            ("rand_augment_magnitude", 0 <= self.rand_augment_magnitude <= 30, "a value in 0..30"),
            ("mixup", self.mixup >= 0, "an alpha >= 0 (0 disables)"),
            ("cutmix", self.cutmix >= 0, "an alpha >= 0 (0 disables)"),
            (
                "class_weights",
                self.class_weights is None or self.mixup == self.cutmix == 0,
                "null when mixup or cutmix is on (their soft targets carry no class weights)",
            ),
            ("lora_r", self.lora_r >= 1, "a rank >= 1"),
            ("lora_dropout", 0.0 <= self.lora_dropout < 1.0, "a value in [0, 1)"),
        )

    def batch_augment(
        self, num_classes: int, mean: Sequence[float] | None, std: Sequence[float] | None
    ) -> BatchAugment:
        """The training-batch augmentation these settings ask for."""
        return BatchAugment(
            num_classes,
            crop_flip=self.augment,
            rand_augment=self.rand_augment,
            num_ops=self.rand_augment_ops,
            magnitude=self.rand_augment_magnitude,
            mixup=self.mixup,
            cutmix=self.cutmix,
            label_smoothing=self.label_smoothing,
            mean=mean,
            std=std,
        )


class ClassifierModule(L.LightningModule):
    def __init__(
        self,
        model: torch.nn.Module,
        settings: FinetuneSettings,
        class_weights: torch.Tensor | None,
        label_names: list[str],
        augment: BatchAugment,
        metrics_fn: MetricsFn = classification_metrics,
    ):
        super().__init__()
        self.model, self.settings, self.label_names, self.metrics_fn = model, settings, label_names, metrics_fn
        self.augment = augment
        self.register_buffer("class_weights", class_weights)
        self._val_probs: list[torch.Tensor] = []
        self._val_labels: list[torch.Tensor] = []

    def training_step(self, batch, batch_idx):
        x, target = self.augment(*batch)  # [N, 3, S, S]; labels [N], or soft targets [N, C] (mixup/cutmix)
        logits = self.model(x).float()  # [N, C]
        if self.augment.soft_targets:
            loss = SoftTargetCrossEntropy()(logits, target)  # label smoothing is in the targets
        else:
            loss = F.cross_entropy(
                logits, target, weight=self.class_weights, label_smoothing=self.settings.label_smoothing
            )
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
        self.log_dict(
            {
                "val/auroc_macro_ovr": float("nan") if auroc is None else auroc,
                "val/accuracy": m["accuracy"],
                "val/qwk": float("nan") if m["qwk"] is None else m["qwk"],
                MONITOR: m["accuracy"] if auroc is None else auroc,
            },
            prog_bar=True,
        )

    def configure_optimizers(self):
        s = self.settings
        lr = s.base_lr * s.batch_size * self.trainer.world_size / 256
        if s.mode == "lora":
            groups = decay_groups(self.model.named_parameters(), weight_decay=s.weight_decay, lr=lr)
        else:  # timm's layer-wise lr decay (RETFound): deeper blocks get larger lrs
            groups = param_groups_layer_decay(
                self.model,
                weight_decay=s.weight_decay,
                layer_decay=s.layer_decay,
                no_weight_decay_list=self.model.no_weight_decay(),
            )
            for group in groups:
                group["lr"] = lr * group.pop("lr_scale")
        total = int(self.trainer.estimated_stepping_batches)
        self.trainer.fit_loop.setup_data()  # batches per epoch, also when max_steps gave the total alone
        warmup = round(s.warmup_epochs * self.trainer.num_training_batches)
        return adamw_with_schedule(groups, lr=lr, warmup_steps=warmup, total_steps=total)


@torch.no_grad()
def predict_proba(model: torch.nn.Module, images: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """Class probabilities float32 [N, C] for images float32 [N, 3, S, S], in eval mode."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    probs = [
        model(torch.from_numpy(np.ascontiguousarray(images[i : i + batch_size], dtype=np.float32)).to(device))
        .float()
        .softmax(dim=-1)
        .cpu()
        for i in range(0, len(images), batch_size)
    ]  # [n, C] each
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
        raise VfmError(
            f"{name} images {list(images.shape)} do not match {len(labels)} labels",
            where=f"finetune_classifier({name})",
            fix="pass (float32 [N, 3, S, S], int64 [N])",
        )
    if labels.min() < 0 or labels.max() >= num_classes:
        raise VfmError(f"{name} labels must lie in 0..{num_classes - 1}", where=f"finetune_classifier({name})")
    return torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32)), torch.from_numpy(labels.astype(np.int64))


def _check_normalisation(mean: Sequence[float] | None, std: Sequence[float] | None) -> None:
    if (mean is None) != (std is None) or (mean is not None and (len(mean) != 3 or len(std) != 3)):
        raise VfmError(
            f"mean {mean!r} and std {std!r} must both be 3 values, or both None",
            where="finetune_classifier(mean, std)",
            fix="pass the preprocessing's mean and std",
        )
    if std is not None and min(std) <= 0:
        raise VfmError(f"std {std!r} must be positive", where="finetune_classifier(std)")


def _build(
    build_model: ModelBuilder, encoder_cfg: dict, num_classes: int, settings: FinetuneSettings, pretrained: Path | None
) -> tuple[torch.nn.Module, dict | None]:
    """The model to train (frozen as ``settings.mode`` says) and the encoder-load report (or None)."""
    linear = settings.mode == "linear"
    model = build_model(encoder_cfg, num_classes, drop_path_rate=0.0 if linear else settings.drop_path)
    report = load_encoder_weights(model, pretrained) if pretrained else None
    if linear:
        for name, p in model.named_parameters():
            p.requires_grad = name.startswith("head.")
    if settings.mode == "lora":
        from vfm.finetune.lora import add_lora  # peft imports transformers: seconds, only when asked for

        model = add_lora(model, r=settings.lora_r, alpha=settings.lora_alpha, dropout=settings.lora_dropout)
    return model, report


def _trained(module: ClassifierModule, best_path: str) -> tuple[torch.nn.Module, int]:
    """The plain model of the best epoch (LoRA adapters merged), on the CPU in eval mode, and that epoch."""
    state = torch.load(best_path, map_location="cpu", weights_only=True)
    module.load_state_dict(state["state_dict"])
    model = module.model
    if module.settings.mode == "lora":
        from vfm.finetune.lora import merge_lora

        model = merge_lora(model)
    return model.cpu().eval(), int(state["epoch"]) + 1  # 1 = the first epoch


def finetune_classifier(
    train: tuple[np.ndarray, np.ndarray],
    val: tuple[np.ndarray, np.ndarray],
    *,
    encoder_cfg: dict,
    num_classes: int,
    settings: FinetuneSettings,
    out_dir: Path,
    pretrained: Path | None,
    label_names: list[str],
    progress: bool = True,
    build_model: ModelBuilder = build_vit_classifier,
    metrics_fn: MetricsFn = classification_metrics,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
) -> dict:
    """Fine-tune a ViT classifier and keep its best epoch by validation macro AUROC.

    train, val: (images float32 [N, 3, S, S], labels int64 [N]). ``pretrained``: an encoder
    checkpoint for ``load_encoder_weights`` (None trains from scratch). Resumes from
    ``out_dir/checkpoints/last.ckpt`` when present. ``build_model`` and ``metrics_fn`` are the
    plugin's ``model`` and ``metrics`` components (``metrics_fn`` must return at least
    ``auroc_macro_ovr``, ``accuracy`` and ``qwk``). ``mean``/``std``: the normalisation of the
    images (3 values each, the preprocessing's), which RandAugment undoes; None: pixels in [0, 1].
    Only ``settings.label_fraction`` of ``train`` is used (stratified, ``settings.seed``).

    Writes into ``out_dir``: ``checkpoints/{best,last}.ckpt``, ``logs/`` (CSV),
    ``classifier.safetensors`` + ``classifier.json`` (best epoch; a plain timm ViT in every
    mode), ``metrics.json`` (its ``metrics_fn`` on ``val`` plus ``best_epoch``, ``n_train_used``
    and ``label_fraction``) and ``plots/`` (``write_classification_plots`` on ``val``). When the
    validation AUROC is undefined (a single class) epochs are compared by accuracy.

    Returns the metrics of ``metrics.json`` plus ``epochs``, ``seconds``, ``encoder_load`` (the
    ``load_encoder_weights`` report, or None) and ``plots`` (the written paths).
    """
    out_dir = Path(out_dir)
    x_train, y_train = _check_split(train, num_classes, "train")
    x_val, y_val = _check_split(val, num_classes, "val")
    _check_normalisation(mean, std)
    if settings.label_fraction < 1.0:
        used = torch.from_numpy(stratified_subset(y_train.numpy(), settings.label_fraction, seed=settings.seed))
        x_train, y_train = x_train[used], y_train[used]
    L.seed_everything(settings.seed, workers=True, verbose=False)
    model, report = _build(build_model, encoder_cfg, num_classes, settings, pretrained)
    module = ClassifierModule(
        model,
        settings,
        _class_weights(y_train.numpy(), num_classes, settings.class_weights),
        label_names,
        settings.batch_augment(num_classes, mean, std),
        metrics_fn,
    )

    loader = DataLoader(
        TensorDataset(x_train, y_train),
        batch_size=settings.batch_size,
        shuffle=True,
        drop_last=len(y_train) > settings.batch_size,
        num_workers=settings.num_workers,
    )
    val_loader = DataLoader(
        TensorDataset(x_val, y_val), batch_size=settings.batch_size, num_workers=settings.num_workers
    )
    run = fit(module, settings, out_dir, train=loader, val=val_loader, monitor=MONITOR, mode="max", progress=progress)

    if run.best is None:
        raise VfmError(
            f"training stopped after {run.steps} steps, before the first validation",
            where="FinetuneSettings.max_steps",
            fix="train at least one epoch (raise max_steps, or set max_epochs instead)",
        )
    model, best_epoch = _trained(module, str(run.best))
    probs = predict_proba(model, x_val.numpy())  # [N_val, C]
    metrics = metrics_fn(y_val.numpy(), probs, label_names)
    metrics |= {"best_epoch": best_epoch, "n_train_used": len(y_train), "label_fraction": settings.label_fraction}
    plots = []
    if run.trainer.is_global_zero:
        save_classifier(
            model, encoder_cfg, num_classes, out_dir, meta={"label_names": label_names, "mode": settings.mode}
        )
        atomic_write_json(out_dir / "metrics.json", metrics)
        plots = write_classification_plots(y_val.numpy(), probs, label_names, out_dir / "plots")
    return {
        **metrics,
        "epochs": int(run.trainer.current_epoch),
        "seconds": round(run.seconds, 3),
        "steps": run.steps,
        "resumed_from_step": run.resumed_from_step,
        "encoder_load": report,
        "plots": [str(p) for p in plots],
    }
