"""Fine-tuning on a tiny separable problem: colour-coded classes, 32 px, a 2-block ViT."""

import json

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from vfm.finetune.classification_training import (FinetuneSettings, augment_batch, finetune_classifier,
                                                   predict_proba)
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
    result = finetune_classifier(train, val, encoder_cfg=ENCODER, num_classes=3, settings=settings(),
                                 out_dir=tmp_path, pretrained=None, label_names=LABELS, progress=False)
    assert result["accuracy"] > 0.9 and result["epochs"] == 3 and result["encoder_load"] is None
    assert 1 <= result["best_epoch"] <= 3
    for name in ("classifier.safetensors", "classifier.json", "metrics.json", "checkpoints/last.ckpt",
                 "checkpoints/best.ckpt"):
        assert (tmp_path / name).is_file(), name
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["accuracy"] == result["accuracy"] and set(saved["per_class_f1"]) == set(LABELS)

    probs = predict_proba(load_classifier(tmp_path), val[0], batch_size=7)
    assert probs.dtype == np.float32 and probs.shape == (30, 3)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert (probs.argmax(axis=1) == val[1]).mean() == pytest.approx(result["accuracy"])

    again = finetune_classifier(train, val, encoder_cfg=ENCODER, num_classes=3, settings=settings(max_epochs=4),
                                out_dir=tmp_path, pretrained=None, label_names=LABELS, progress=False)
    assert again["epochs"] == 4  # resumed after epoch 3, trained one more


def test_linear_probe_trains_only_the_head_of_a_pretrained_encoder(tmp_path):
    mae = MaskedAutoencoderViT(MaeConfig(**ENCODER, decoder_embed_dim=32, decoder_depth=1, decoder_num_heads=2))
    save_file(mae.encoder_state_dict(), tmp_path / "encoder.safetensors")
    result = finetune_classifier(colour_data(32, 2), colour_data(12, 3), encoder_cfg=ENCODER, num_classes=3,
                                 settings=settings(mode="linear", max_epochs=1, class_weights="balanced"),
                                 out_dir=tmp_path / "run", pretrained=tmp_path / "encoder.safetensors",
                                 label_names=LABELS, progress=False)
    assert result["encoder_load"]["format"] == "safetensors"
    model = load_classifier(tmp_path / "run")
    assert torch.equal(model.blocks[1].mlp.fc2.weight, mae.blocks[1].mlp.fc2.weight)  # frozen
    assert model.head.weight.abs().max() > 1e-3  # trained away from its 2e-5 init


def test_augment_flips_and_crops_per_image():
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).reshape(2, 3, 8, 8)
    torch.manual_seed(0)
    out = augment_batch(x, min_area=1.0)  # no crop: each image is itself or its mirror
    for i in range(2):
        assert torch.allclose(out[i], x[i], atol=1e-4) or torch.allclose(out[i], x[i].flip(-1), atol=1e-4)
    assert augment_batch(x).shape == x.shape


def test_invalid_settings_raise_vfm_error():
    with pytest.raises(VfmError, match="mode"):
        FinetuneSettings(mode="partial")
    with pytest.raises(VfmError, match="class_weights"):
        FinetuneSettings(class_weights="inverse")
