"""MAE model and pretraining loop, on tiny real models (32 px, patch 8, width 32-64)."""

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from timm.models.vision_transformer import VisionTransformer

from vfm.platform.errors import VfmError
from vfm.platform.training.checkpoints import keep_trained_result
from vfm.platform.training.optim import warmup_decay
from vfm.platform.training.sampling import EpochSampler
from vfm.platform.training.trainer import resolve_precision
from vfm.pretrain.mae import MaeConfig, MaskedAutoencoderViT, sincos_pos_embed
from vfm.pretrain.mae_training import PretrainSettings, masking_noise, pretrain_mae


def tiny_cfg(**overrides) -> MaeConfig:
    base = dict(embed_dim=32, depth=2, num_heads=2, decoder_embed_dim=32, decoder_depth=1, decoder_num_heads=2)
    return MaeConfig.preset("tiny", img_size=32, **{**base, **overrides})


def test_presets_have_the_documented_shapes():
    assert MaeConfig.preset("tiny", img_size=32).patch_size == 8
    assert MaeConfig.preset("tiny", img_size=16).patch_size == 4
    assert MaeConfig.preset("tiny", img_size=96).patch_size == 16  # the first size giving 16-64 tokens
    assert MaeConfig.preset("tiny", img_size=96, patch_size=8).patch_size == 8  # an override wins
    assert MaeConfig.preset("tiny", img_size=96, patch_size=None).patch_size == 16  # None keeps the preset's
    large = MaeConfig.preset("large")
    assert (large.patch_size, large.embed_dim, large.depth, large.num_heads) == (16, 1024, 24, 16)
    assert (large.decoder_embed_dim, large.decoder_depth) == (512, 8)
    assert MaeConfig.preset("base").embed_dim == 768
    with pytest.raises(VfmError, match="unknown MAE preset"):
        MaeConfig.preset("huge")
    with pytest.raises(VfmError, match="not a multiple"):
        MaeConfig(img_size=30, patch_size=8)


def test_sincos_pos_embed_is_fixed_and_distinct():
    emb = sincos_pos_embed(32, 4)
    assert emb.shape == (17, 32)
    assert torch.all(emb[0] == 0)
    assert torch.cdist(emb[1:], emb[1:]).add(torch.eye(16)).min() > 0.1  # every position differs


@pytest.mark.parametrize("ratio", [0.0, 0.5, 0.75, 0.9])
def test_random_masking_keeps_round_share_and_restores_order(ratio):
    model = MaskedAutoencoderViT(tiny_cfg())
    x = torch.arange(3 * 16, dtype=torch.float32).reshape(3, 16, 1).expand(-1, -1, 4)  # [N, L, D]
    x_masked, mask, ids_restore = model.random_masking(x, ratio)
    keep = round(16 * (1 - ratio))
    assert x_masked.shape == (3, keep, 4)
    assert torch.all(mask.sum(dim=1) == 16 - keep)
    for n in range(3):
        kept = x_masked[n, :, 0].long() - 16 * n  # patch indices that were kept
        assert torch.all(mask[n, kept] == 0)
    # ids_restore inverts the shuffle: visible + dummy tokens, unshuffled, are back in patch order
    ids_shuffle = torch.argsort(ids_restore, dim=1)
    shuffled = torch.gather(x, 1, ids_shuffle[..., None].expand(-1, -1, 4))
    assert torch.equal(torch.gather(shuffled, 1, ids_restore[..., None].expand(-1, -1, 4)), x)


def test_given_noise_keeps_the_patches_with_the_smallest_noise():
    model = MaskedAutoencoderViT(tiny_cfg())
    x = torch.arange(16, dtype=torch.float32).reshape(1, 16, 1)  # [N, L, D], value = patch index
    noise = torch.linspace(1, 0, 16)[None]  # [N, L], the last patches have the smallest noise
    x_masked, mask, _ = model.random_masking(x, 0.75, noise)
    assert sorted(x_masked[0, :, 0].tolist()) == [12, 13, 14, 15]
    assert mask[0].tolist() == [1] * 12 + [0] * 4


def test_masking_noise_of_a_sample_depends_only_on_seed_and_key():
    keys = torch.tensor([5, 9, 2])
    noise = masking_noise(keys, seed=1, length=16)  # [N, L]
    assert noise.shape == (3, 16) and noise.dtype == torch.float32 and 0 <= noise.min() and noise.max() < 1
    assert torch.equal(masking_noise(keys[1:], seed=1, length=16), noise[1:])
    assert not torch.equal(masking_noise(keys, seed=2, length=16), noise)


def test_epoch_sampler_splits_global_batches_across_ranks_and_resumes():
    one = EpochSampler(10, batch_size=4, seed=0)
    ranks = [EpochSampler(10, batch_size=2, seed=0, rank=r, world_size=2) for r in range(2)]
    assert len(one) == len(ranks[0]) == 2  # 10 // 4, the rest dropped
    for epoch in (0, 1):
        for sampler in (one, *ranks):
            sampler.set_epoch(epoch)
        together = [np.concatenate(pair) for pair in zip(*ranks)]
        assert all(np.array_equal(a, b) for a, b in zip(one, together))
    epoch_0, epoch_1 = EpochSampler(10, 4, seed=0), EpochSampler(10, 4, seed=0)
    epoch_1.set_epoch(1)
    assert not np.array_equal(next(iter(epoch_0)), next(iter(epoch_1)))
    state = epoch_1.state_dict()
    assert state == {"epoch": 1, "consumed": 1}
    resumed = EpochSampler(10, 4, seed=0)
    resumed.load_state_dict(state)
    resumed.set_epoch(1)
    rest = list(resumed)
    assert len(rest) == 1 and np.array_equal(rest[0], list(epoch_1)[0])


def test_patchify_roundtrip_and_forward_shapes():
    model = MaskedAutoencoderViT(tiny_cfg())
    imgs = torch.randn(2, 3, 32, 32)
    assert torch.equal(model.unpatchify(model.patchify(imgs)), imgs)
    loss, pred, mask = model(imgs)
    assert pred.shape == (2, 16, 8 * 8 * 3) and mask.shape == (2, 16) and loss.ndim == 0


def test_encoder_state_dict_loads_exactly_into_timm_vit():
    model = MaskedAutoencoderViT(tiny_cfg()).eval()
    vit = VisionTransformer(**model.encoder_config(), num_classes=0, global_pool="token").eval()
    vit.load_state_dict(model.encoder_state_dict(), strict=True)
    imgs = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        latent, _, ids_restore = model.forward_encoder(imgs, 0.0)  # [N, 1+L, D], shuffled patches
        tokens = torch.gather(latent[:, 1:], 1, ids_restore[..., None].expand(-1, -1, latent.shape[2]))
        features = vit.forward_features(imgs)  # [N, 1+L, D]
    torch.testing.assert_close(features[:, 0], latent[:, 0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(features[:, 1:], tokens, atol=1e-5, rtol=1e-5)
    # with average pooling timm swaps the final norm for a fresh fc_norm, and nothing else differs
    avg = VisionTransformer(**model.encoder_config(), num_classes=0, global_pool="avg")
    result = avg.load_state_dict(model.encoder_state_dict(), strict=False)
    assert sorted(result.missing_keys) == ["fc_norm.bias", "fc_norm.weight"]
    assert sorted(result.unexpected_keys) == ["norm.bias", "norm.weight"]


def test_loss_decreases_on_a_fixed_batch():
    torch.manual_seed(0)
    model = MaskedAutoencoderViT(tiny_cfg(norm_pix_loss=False))
    imgs = torch.rand(4, 3, 32, 32)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(30):
        torch.manual_seed(1)  # same mask each step: the task is fixed
        loss, _, _ = model(imgs)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_schedule_warms_up_then_decays():
    f = warmup_decay(warmup_steps=4, total_steps=20)
    assert f(0) == pytest.approx(0.25) and f(3) == pytest.approx(1.0)
    assert f(4) == pytest.approx(1.0) and f(20) == pytest.approx(0.0, abs=1e-12)
    assert resolve_precision("32") == "32"
    with pytest.raises(VfmError, match="seed"):
        PretrainSettings(seed=-1)


def test_pretrain_writes_artifacts_and_resumes(tmp_path):
    images = np.random.default_rng(0).standard_normal((8, 3, 32, 32)).astype(np.float32)
    cfg = tiny_cfg()
    settings = PretrainSettings(
        max_steps=4,
        batch_size=4,
        warmup_steps=1,
        precision="32",
        accelerator="cpu",
        devices=1,
        checkpoint_every_n_steps=2,
    )
    meta = {"mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]}
    first = pretrain_mae(images, cfg, settings, tmp_path, progress=False, extra_meta=meta)
    assert first["steps"] == 4 and first["resumed_from_step"] == 0 and np.isfinite(first["final_loss"])
    for name in (
        "encoder.safetensors",
        "encoder.json",
        "mae.safetensors",
        "reconstruction.png",
        "checkpoints/last.ckpt",
    ):
        assert (tmp_path / name).is_file(), name
    info = json.loads((tmp_path / "encoder.json").read_text())
    assert info["mean"] == meta["mean"] and info["encoder"]["patch_size"] == 8
    vit = VisionTransformer(**info["encoder"], num_classes=0)
    vit.load_state_dict(load_file(tmp_path / "encoder.safetensors"), strict=True)
    assert not any(name.startswith(".") for name in (p.name for p in tmp_path.iterdir()))  # no temp files
    assert sorted(p.name for p in (tmp_path / "reconstructions").iterdir()) == ["epoch_0001.png", "epoch_0002.png"]

    again = pretrain_mae(
        images,
        cfg,
        PretrainSettings(**{**settings.__dict__, "max_steps": 6}),
        tmp_path,
        progress=False,
        extra_meta=meta,
    )
    assert again["resumed_from_step"] == 4 and again["steps"] == 6
    other = PretrainSettings(**{**settings.__dict__, "max_steps": 8, "base_lr": 1e-3})
    with pytest.raises(VfmError, match=r"written with other settings \(base_lr\)"):
        pretrain_mae(images, cfg, other, tmp_path, progress=False, extra_meta=meta)  # two runs never mix
    assert again["seconds_all_calls"] > again["seconds"] > 0 and first["seconds_all_calls"] >= first["seconds"]


def test_a_call_that_trains_nothing_keeps_the_recorded_result():
    trained = {"steps": 6, "resumed_from_step": 4, "seconds": 12.5}
    finished = {"steps": 6, "resumed_from_step": 6, "seconds": 0.0}  # the checkpoint was already at max_steps
    assert keep_trained_result(finished, trained) is trained
    assert keep_trained_result(finished, None) is finished  # nothing recorded: the call's own result
    assert keep_trained_result(finished, {"steps": 4, "resumed_from_step": 0, "seconds": 9.0}) is finished
    assert keep_trained_result(trained, {"steps": 4, "resumed_from_step": 0, "seconds": 9.0}) is trained
