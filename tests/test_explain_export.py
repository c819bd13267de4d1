"""Attention rollout on a tiny timm ViT, and its ONNX export with a parity report."""

import onnx
import pytest
import torch
from timm.models.vision_transformer import VisionTransformer

from vfm.finetune.explain import ExplainedClassifier
from vfm.finetune.vit_classifier import build_vit_classifier
from vfm.platform.errors import VfmError
from vfm.serve.export import export_onnx

ENCODER = dict(img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=2)


def tiny_vit(**kwargs) -> VisionTransformer:
    torch.manual_seed(0)
    return build_vit_classifier(ENCODER, num_classes=4, **kwargs).eval()


def test_probabilities_match_the_plain_model_and_heatmap_is_normalised():
    for pool in ("avg", "token"):
        vit = tiny_vit(global_pool=pool)
        x = torch.randn(3, 3, 32, 32)
        with torch.no_grad():
            probs, heat = ExplainedClassifier(vit).eval()(x)
            torch.testing.assert_close(probs, vit(x).softmax(dim=-1), atol=1e-5, rtol=0)
        assert heat.shape == (3, 32, 32)
        assert heat.min() >= 0 and torch.allclose(heat.amax(dim=(1, 2)), torch.ones(3))


def test_attention_is_the_one_timm_computes():
    vit = tiny_vit()
    captured = []
    for blk in vit.blocks:
        blk.attn.fused_attn = False  # timm's explicit path passes the weights through attn_drop
        blk.attn.attn_drop.register_forward_hook(lambda mod, args, out: captured.append(out))
    x = torch.randn(2, 3, 32, 32)
    explained = ExplainedClassifier(vit)
    with torch.no_grad():
        vit(x)
        tokens = vit._pos_embed(vit.patch_embed(x))
        for blk, reference in zip(vit.blocks, captured):
            tokens, attn = explained.block_with_attention(blk, tokens)
            torch.testing.assert_close(attn, reference, atol=1e-6, rtol=1e-5)


def test_uniform_attention_gives_a_flat_map():
    vit = tiny_vit()
    with torch.no_grad():
        for blk in vit.blocks:  # q = k = 0: every token attends equally to all
            blk.attn.qkv.weight[:64].zero_()
            blk.attn.qkv.bias[:64].zero_()
        _, heat = ExplainedClassifier(vit)(torch.randn(2, 3, 32, 32))
    assert heat.abs().max() < 1e-3


def test_models_without_a_class_token_are_refused():
    vit = VisionTransformer(**ENCODER, num_classes=2, class_token=False, global_pool="avg")
    with pytest.raises(VfmError, match="class token"):
        ExplainedClassifier(vit)


def test_export_parity_with_another_batch_size(tmp_path):
    model = ExplainedClassifier(tiny_vit())
    report = export_onnx(model, {"pixels": torch.randn(2, 3, 32, 32)}, ["probabilities", "heatmap"],
                         tmp_path / "model.onnx", parity_inputs={"pixels": torch.randn(5, 3, 32, 32)})
    assert report["passed"] and report["n_inputs"] == 5 and report["opset"] == 18
    assert report["files"] == [str(tmp_path / "model.onnx")]
    assert report["outputs"]["probabilities"]["shape"] == [5, 4]
    assert report["outputs"]["heatmap"]["shape"] == [5, 32, 32]
    for out in report["outputs"].values():
        assert out["max_abs_err"] <= 1e-4
    graph = onnx.load(tmp_path / "model.onnx").graph
    assert [i.name for i in graph.input] == ["pixels"]
    assert graph.input[0].type.tensor_type.shape.dim[0].dim_param  # symbolic batch axis
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]  # no staging left behind


class EagerOnlyShift(torch.nn.Module):
    """Adds 0.01 in eager mode only, so torch and the exported graph disagree by exactly 0.01."""

    def forward(self, x):
        return x if torch.compiler.is_exporting() else x + 0.01


def test_parity_failure_names_the_output(tmp_path):
    example = {"x": torch.randn(2, 3)}
    with pytest.raises(VfmError, match="'y' differs from torch: max abs err 0.01"):
        export_onnx(EagerOnlyShift(), example, ["y"], tmp_path / "shift.onnx")
    report = export_onnx(EagerOnlyShift(), example, ["y"], tmp_path / "shift.onnx", raise_on_failure=False)
    assert report["passed"] is False and report["outputs"]["y"]["max_abs_err"] == pytest.approx(0.01)
