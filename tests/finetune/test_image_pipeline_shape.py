"""MAE shape settings under ``pretrain`` (patch size, widths, mask ratio) reach both arms of a study."""

import json

import pytest

from vfm.finetune.image_pipeline import ImageClassificationPipeline, mae_config
from vfm.platform.errors import VfmError
from vfm.platform.registry import get_plugin


def test_a_patch_size_reaches_the_mae_and_the_from_scratch_vit(tmp_path):
    pipeline = ImageClassificationPipeline(get_plugin("retina"))
    shape = {"preprocessing": {"image_size": 32}, "pretrain": {"patch_size": 8, "mask_ratio": 0.5}}
    config = pipeline.resolve(shape)
    mae = mae_config(config)
    assert (mae.patch_size, mae.mask_ratio, mae.embed_dim) == (8, 0.5, 64)  # the rest stays the tiny preset's
    assert pipeline._encoder_config(config, None)["patch_size"] == 8  # the scratch arm
    smoke = pipeline.smoke_config()
    config = smoke | {"preprocessing": shape["preprocessing"], "pretrain": smoke["pretrain"] | shape["pretrain"]}
    pipeline.pretrain(config, tmp_path / "pre", progress=False)
    encoder = json.loads((tmp_path / "pre/encoder.json").read_text())["encoder"]
    assert encoder["patch_size"] == 8
    with pytest.raises(VfmError, match="not a multiple of patch_size"):
        mae_config(pipeline.resolve({"preprocessing": {"image_size": 32}, "pretrain": {"patch_size": 5}}))


def test_a_fine_tune_records_the_pretraining_its_encoder_was_made_with(tmp_path):
    """The run's config.yaml (and so its bundle's) carries the pretrain section of the vfm run that made
    the encoder, not this run's defaults; an encoder from elsewhere leaves the config as it is."""
    (tmp_path / "config.yaml").write_text("pretrain:\n  max_steps: 77\n  mask_ratio: 0.6\n")
    config = {"pretrain": {"max_steps": 1000}, "finetune": {}}
    used = ImageClassificationPipeline._with_pretraining_used(config, str(tmp_path / "encoder.safetensors"))
    assert used["pretrain"] == {"max_steps": 77, "mask_ratio": 0.6} and config["pretrain"] == {"max_steps": 1000}
    elsewhere = tmp_path / "other"
    elsewhere.mkdir()
    assert ImageClassificationPipeline._with_pretraining_used(config, str(elsewhere / "retfound.pth")) == config
