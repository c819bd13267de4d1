"""Fine-tuning on a tiny separable problem: colour-coded classes, 32 px, a 2-block ViT."""

import json

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from vfm.finetune.classification_training import FinetuneSettings, finetune_classifier, predict_proba
from vfm.finetune.label_fraction import stratified_subset
from vfm.finetune.vit_classifier import load_classifier
from vfm.platform.errors import VfmError
from vfm.pretrain.mae import MaeConfig, MaskedAutoencoderViT

ENCODER = dict(img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=2)
LABELS = ["red", "green", "blue"]


def colour_data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Noise images whose class is the brighter channel."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, n)
    images = rng.normal(0, 0.5, (n, 3, 32, 32)).astype(np.float32)
    images[np.arange(n), labels] += 1.0
    return images, labels.astype(np.int64)


def settings(**overrides) -> FinetuneSettings:
    base = dict(max_epochs=3, batch_size=16, base_lr=0.05, precision="32", accelerator="cpu", devices=1)
    return FinetuneSettings(**{**base, **overrides})


def test_separable_problem_is_learned_saved_and_resumed(tmp_path):
    train, val = colour_data(64, 0), colour_data(30, 1)
    result = finetune_classifier(
        train,
        val,
        encoder_cfg=ENCODER,
        num_classes=3,
        settings=settings(),
        out_dir=tmp_path,
        pretrained=None,
        label_names=LABELS,
        progress=False,
    )
    assert result["accuracy"] > 0.9 and result["epochs"] == 3 and result["encoder_load"] is None
    assert 1 <= result["best_epoch"] <= 3
    for name in (
        "classifier.safetensors",
        "classifier.json",
        "metrics.json",
        "checkpoints/last.ckpt",
        "checkpoints/best.ckpt",
    ):
        assert (tmp_path / name).is_file(), name
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["accuracy"] == result["accuracy"] and set(saved["per_class_f1"]) == set(LABELS)
    assert saved["n_train_used"] == 64 and saved["label_fraction"] == 1.0
    assert {"aupr_macro_ovr", "ece", "per_class_aupr"} <= set(saved)
    assert [p.split("/")[-1] for p in result["plots"]] == [
        "roc_curves.png",
        "confusion_matrix.png",
        "reliability_diagram.png",
    ]
    assert all((tmp_path / "plots" / name).is_file() for name in ("roc_curves.png", "reliability_diagram.png"))

    probs = predict_proba(load_classifier(tmp_path), val[0], batch_size=7)
    assert probs.dtype == np.float32 and probs.shape == (30, 3)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert (probs.argmax(axis=1) == val[1]).mean() == pytest.approx(result["accuracy"])

    again = finetune_classifier(
        train,
        val,
        encoder_cfg=ENCODER,
        num_classes=3,
        settings=settings(max_epochs=4),
        out_dir=tmp_path,
        pretrained=None,
        label_names=LABELS,
        progress=False,
    )
    assert again["epochs"] == 4  # resumed after epoch 3, trained one more


def test_a_step_budget_that_ends_before_the_first_validation_is_named(tmp_path):
    train, val = colour_data(64, 0), colour_data(30, 1)  # 4 batches per epoch
    with pytest.raises(VfmError, match="before the first validation"):
        finetune_classifier(
            train,
            val,
            encoder_cfg=ENCODER,
            num_classes=3,
            settings=settings(max_steps=2),
            out_dir=tmp_path,
            pretrained=None,
            label_names=LABELS,
            progress=False,
        )


def test_linear_probe_trains_only_the_head_of_a_pretrained_encoder(tmp_path):
    mae = MaskedAutoencoderViT(MaeConfig(**ENCODER, decoder_embed_dim=32, decoder_depth=1, decoder_num_heads=2))
    save_file(mae.encoder_state_dict(), tmp_path / "encoder.safetensors")
    result = finetune_classifier(
        colour_data(32, 2),
        colour_data(12, 3),
        encoder_cfg=ENCODER,
        num_classes=3,
        settings=settings(mode="linear", max_epochs=1, class_weights="balanced"),
        out_dir=tmp_path / "run",
        pretrained=tmp_path / "encoder.safetensors",
        label_names=LABELS,
        progress=False,
    )
    assert result["encoder_load"]["format"] == "safetensors"
    model = load_classifier(tmp_path / "run")
    assert torch.equal(model.blocks[1].mlp.fc2.weight, mae.blocks[1].mlp.fc2.weight)  # frozen
    assert model.head.weight.abs().max() > 1e-3  # trained away from its 2e-5 init


def test_label_fraction_rand_augment_and_mixup_train_on_a_stratified_subset(tmp_path):
    train = colour_data(61, 4)
    mean, std = [0.1, 0.2, 0.3], [0.9, 0.8, 0.7]
    result = finetune_classifier(
        train,
        colour_data(12, 5),
        encoder_cfg=ENCODER,
        num_classes=3,
        settings=settings(max_epochs=1, label_fraction=0.25, rand_augment=True, mixup=0.8, cutmix=1.0),
        out_dir=tmp_path,
        pretrained=None,
        label_names=LABELS,
        progress=False,
        mean=mean,
        std=std,
    )
    assert result["n_train_used"] == len(stratified_subset(train[1], 0.25, seed=0)) < 20
    assert result["label_fraction"] == 0.25 and result["epochs"] == 1


def test_lora_trains_adapters_and_saves_a_merged_plain_classifier(tmp_path):
    mae = MaskedAutoencoderViT(MaeConfig(**ENCODER, decoder_embed_dim=32, decoder_depth=1, decoder_num_heads=2))
    save_file(mae.encoder_state_dict(), tmp_path / "encoder.safetensors")
    result = finetune_classifier(
        colour_data(32, 6),
        colour_data(12, 7),
        encoder_cfg=ENCODER,
        num_classes=3,
        settings=settings(mode="lora", max_epochs=2, lora_r=4, lora_alpha=8),
        out_dir=tmp_path / "run",
        pretrained=tmp_path / "encoder.safetensors",
        label_names=LABELS,
        progress=False,
    )
    assert result["epochs"] == 2
    model = load_classifier(tmp_path / "run")  # strict load: no LoRA keys left
    assert json.loads((tmp_path / "run" / "classifier.json").read_text())["mode"] == "lora"
    assert torch.equal(model.patch_embed.proj.weight, mae.patch_embed.proj.weight)  # frozen, no adapter
    assert not torch.allclose(model.blocks[0].attn.qkv.weight, mae.blocks[0].attn.qkv.weight)  # adapter merged
    assert model.head.weight.abs().max() > 1e-3


def test_invalid_settings_raise_vfm_error():
    with pytest.raises(VfmError, match="mode"):
        FinetuneSettings(mode="partial")
    with pytest.raises(VfmError, match="class_weights"):
        FinetuneSettings(class_weights="inverse")
    with pytest.raises(VfmError, match="label_fraction"):
        FinetuneSettings(label_fraction=0.0)
    with pytest.raises(VfmError, match="class_weights.*soft targets"):
        FinetuneSettings(class_weights="balanced", mixup=0.8)
    with pytest.raises(VfmError, match="rand_augment_magnitude"):
        FinetuneSettings(rand_augment_magnitude=31)
    with pytest.raises(VfmError, match="lora_r"):
        FinetuneSettings(mode="lora", lora_r=0)


def test_mean_without_std_is_refused(tmp_path):
    with pytest.raises(VfmError, match="mean .* and std"):
        finetune_classifier(
            colour_data(8, 0),
            colour_data(4, 1),
            encoder_cfg=ENCODER,
            num_classes=3,
            settings=settings(),
            out_dir=tmp_path,
            pretrained=None,
            label_names=LABELS,
            progress=False,
            mean=[0.5, 0.5, 0.5],
        )
