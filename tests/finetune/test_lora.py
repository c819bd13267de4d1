"""LoRA on a tiny timm ViT: what trains, merging, and that the merged model is a plain classifier."""

import pytest
import torch

from vfm.finetune.lora import add_lora, merge_lora
from vfm.finetune.vit_classifier import build_vit_classifier, load_classifier, save_classifier
from vfm.platform.errors import VfmError

ENCODER = dict(img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=2)


def tiny_vit() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_vit_classifier(ENCODER, num_classes=3)


def test_only_adapters_and_head_train():
    model = add_lora(tiny_vit(), r=2, alpha=4)
    trainable = {n: p.numel() for n, p in model.named_parameters() if p.requires_grad}
    assert all("lora_" in n or ".fc_norm." in n or ".head." in n for n in trainable)
    d, r = 32, 2  # per block: qkv d->3d, proj d->d, fc1 d->4d, fc2 4d->d; A is [r, in], B [out, r]
    lora = 2 * r * ((d + 3 * d) + (d + d) + (d + 4 * d) + (4 * d + d))
    assert sum(trainable.values()) == lora + (d * 3 + 3) + 2 * d  # + head + fc_norm
    assert sum(trainable.values()) < 0.1 * sum(p.numel() for p in model.parameters())
    assert not any("patch_embed" in n for n in trainable)  # 'proj' targets the blocks only


def test_merged_model_computes_the_same_and_is_a_plain_vit(tmp_path):
    plain_keys = set(tiny_vit().state_dict())
    model = add_lora(tiny_vit(), r=4, alpha=8).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.1)  # as after training: B starts at zero
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        unmerged = model(x)
        merged_model = merge_lora(model).eval()
        merged = merged_model(x)
    torch.testing.assert_close(merged, unmerged, atol=1e-5, rtol=1e-4)
    assert set(merged_model.state_dict()) == plain_keys
    save_classifier(merged_model, ENCODER, 3, tmp_path)
    with torch.no_grad():
        torch.testing.assert_close(load_classifier(tmp_path)(x), merged, atol=0, rtol=0)


def test_a_model_without_vit_blocks_is_refused():
    with pytest.raises(VfmError, match="no LoRA target layers"):
        add_lora(torch.nn.Sequential(torch.nn.Linear(4, 2)))
