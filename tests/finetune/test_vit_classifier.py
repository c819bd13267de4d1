"""Building timm ViT classifiers and loading encoders into them (ours, RETFound-style, plain)."""

import argparse

import pytest
import torch
from safetensors.torch import save_file

from vfm.finetune.vit_classifier import build_vit_classifier, load_classifier, load_encoder_weights, save_classifier
from vfm.platform.errors import VfmError
from vfm.pretrain.mae import MaeConfig, MaskedAutoencoderViT

TINY = dict(embed_dim=32, depth=2, num_heads=2, decoder_embed_dim=32, decoder_depth=1, decoder_num_heads=2)


def mae(img_size: int = 32) -> MaskedAutoencoderViT:
    return MaskedAutoencoderViT(MaeConfig.preset("tiny", img_size=img_size, **TINY))


def test_our_encoder_loads_with_only_head_and_fc_norm_missing(tmp_path):
    encoder = mae()
    save_file(encoder.encoder_state_dict(), tmp_path / "encoder.safetensors")
    model = build_vit_classifier(encoder.encoder_config(), num_classes=3)
    report = load_encoder_weights(model, tmp_path / "encoder.safetensors")
    assert report == {
        "format": "safetensors",
        "missing": ["fc_norm.bias", "fc_norm.weight", "head.bias", "head.weight"],
        "unexpected": [],
        "dropped": ["norm.bias", "norm.weight"],
        "interpolated_pos_embed": False,
    }
    assert torch.equal(model.blocks[1].attn.qkv.weight, encoder.blocks[1].attn.qkv.weight)
    assert torch.all(model.head.bias == 0) and model.head.weight.abs().max() < 1e-4

    token = build_vit_classifier(encoder.encoder_config(), num_classes=3, global_pool="token")
    report = load_encoder_weights(token, tmp_path / "encoder.safetensors")
    assert report["missing"] == ["head.bias", "head.weight"] and report["dropped"] == []
    assert torch.equal(token.norm.weight, encoder.norm.weight)


def test_retfound_checkpoint_at_another_resolution_is_interpolated(tmp_path):
    big = mae(img_size=64)  # grid 8x8; the classifier below has a 4x4 grid
    args = argparse.Namespace(model="vit_large_patch16", input_size=64)  # MAE's save_model stores its args
    torch.save({"model": big.state_dict(), "epoch": 799, "args": args}, tmp_path / "RETFound_mae.pth")
    model = build_vit_classifier(mae(32).encoder_config(), num_classes=5)
    report = load_encoder_weights(model, tmp_path / "RETFound_mae.pth")
    assert report["format"] == "retfound" and report["interpolated_pos_embed"] is True
    assert "mask_token" in report["dropped"] and "decoder_pred.weight" in report["dropped"]
    assert report["unexpected"] == []
    assert model.pos_embed.shape == (1, 17, 32)
    assert torch.equal(model.pos_embed[0, 0], big.pos_embed[0, 0])  # cls position kept
    assert torch.equal(model.blocks[0].mlp.fc1.weight, big.blocks[0].mlp.fc1.weight)


def test_plain_and_lightning_state_dicts_load(tmp_path):
    encoder = mae()
    torch.save(encoder.encoder_state_dict(), tmp_path / "plain.pt")
    torch.save({"state_dict": {f"model.{k}": v for k, v in encoder.state_dict().items()}}, tmp_path / "pl.ckpt")
    for name, fmt in (("plain.pt", "state_dict"), ("pl.ckpt", "lightning")):
        model = build_vit_classifier(encoder.encoder_config(), num_classes=2)
        report = load_encoder_weights(model, tmp_path / name)
        assert report["format"] == fmt and report["unexpected"] == []
        assert torch.equal(model.patch_embed.proj.weight, encoder.patch_embed.proj.weight)


def test_unexpected_keys_are_listed(tmp_path):
    state = mae().encoder_state_dict() | {"extra.scale": torch.ones(1)}
    save_file(state, tmp_path / "enc.safetensors")
    report = load_encoder_weights(build_vit_classifier(mae().encoder_config(), 2), tmp_path / "enc.safetensors")
    assert report["unexpected"] == ["extra.scale"]


class Sampler:
    """A Python object in a checkpoint: weights-only loading must refuse to unpickle it."""


def test_bad_checkpoints_raise_vfm_error(tmp_path):
    model = build_vit_classifier(mae().encoder_config(), num_classes=2)
    (tmp_path / "notes.pth").write_text("not a checkpoint")
    (tmp_path / "junk.safetensors").write_bytes(b"\x00" * 64)
    torch.save({"lr": 0.1}, tmp_path / "settings.pth")
    for name in ("missing.pth", "notes.pth", "junk.safetensors", "settings.pth"):
        with pytest.raises(VfmError):
            load_encoder_weights(model, tmp_path / name)

    wide = MaskedAutoencoderViT(MaeConfig.preset("tiny", img_size=32, **{**TINY, "embed_dim": 64}))
    save_file(wide.encoder_state_dict(), tmp_path / "wide.safetensors")
    with pytest.raises(VfmError, match="shape"):
        load_encoder_weights(model, tmp_path / "wide.safetensors")

    save_file({"pos_embed": model.pos_embed.detach().clone()}, tmp_path / "partial.safetensors")
    torch.save({"model": model.state_dict(), "sampler": Sampler()}, tmp_path / "objects.pth")
    with pytest.raises(VfmError, match="weights-only"):
        load_encoder_weights(model, tmp_path / "objects.pth")

    with pytest.raises(VfmError, match="lacks"):
        load_encoder_weights(model, tmp_path / "partial.safetensors")

    with pytest.raises(VfmError, match="unknown ViT setting"):
        build_vit_classifier({**mae().encoder_config(), "mean": [0.5]}, 2)


def test_save_and_load_classifier_roundtrip(tmp_path):
    cfg = mae().encoder_config()
    model = build_vit_classifier(cfg, num_classes=4).eval()
    files = save_classifier(model, cfg, 4, tmp_path, meta={"labels": list("abcd")})
    assert sorted(p.name for p in files) == ["classifier.json", "classifier.safetensors"]
    loaded = load_classifier(tmp_path)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x))
    with pytest.raises(VfmError):
        load_classifier(tmp_path / "nowhere")


def test_weights_of_another_architecture_are_one_line(tmp_path):
    """A run folder whose weights are not this ViT's (the small-CNN baseline's) is refused, not a state-dict dump."""
    cfg = mae().encoder_config()
    save_classifier(build_vit_classifier(cfg, num_classes=4), cfg, 4, tmp_path, meta={})
    save_file({"conv.weight": torch.zeros(8, 3, 3, 3)}, tmp_path / "classifier.safetensors")
    with pytest.raises(VfmError, match="not this ViT classifier's") as info:
        load_classifier(tmp_path)
    assert "\n" not in str(info.value)
    (tmp_path / "classifier.json").write_text("{}")
    with pytest.raises(VfmError, match="not a vfm ViT classifier"):
        load_classifier(tmp_path)
