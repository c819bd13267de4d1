"""Attention rollout and Grad-CAM on a tiny timm ViT, and their ONNX export with a parity report."""

import onnx
import pytest
import torch
from monai.visualize import GradCAM
from timm.models.vision_transformer import VisionTransformer

from vfm.finetune.explain import OUTPUT_NAMES, ExplainedClassifier
from vfm.finetune.export import export_onnx
from vfm.finetune.vit_classifier import build_vit_classifier
from vfm.platform.errors import VfmError

ENCODER = dict(img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=2)


def tiny_vit(**kwargs) -> VisionTransformer:
    """A random 2-block ViT whose fc_norm is not the identity map (so its Jacobian matters)."""
    torch.manual_seed(0)
    vit = build_vit_classifier(ENCODER, num_classes=4, **kwargs).eval()
    own = torch.Generator().manual_seed(1)  # leaves the global stream (the tests' inputs) as it was
    with torch.no_grad():
        vit.fc_norm.weight.normal_(1.0, 0.3, generator=own)
        vit.fc_norm.bias.normal_(0.0, 0.3, generator=own)
    return vit


def autograd_gradcam(vit: VisionTransformer, x: torch.Tensor) -> torch.Tensor:
    """Textbook Grad-CAM on the last block's patch tokens: [N, G*G], before upsampling."""
    features = vit.forward_features(x)  # [N, T, D]
    logits = vit.forward_head(features)  # [N, C]
    score = logits.gather(1, logits.argmax(dim=1, keepdim=True)).sum()
    grad = torch.autograd.grad(score, features)[0][:, vit.num_prefix_tokens :]  # [N, P, D]
    weights = grad.mean(dim=1, keepdim=True)  # [N, 1, D], channel weights: gradients averaged over positions
    return torch.relu((weights * features[:, vit.num_prefix_tokens :]).sum(dim=-1)).detach()


def test_probabilities_match_the_plain_model_and_maps_are_normalised():
    vit = tiny_vit()
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        probs, heat, cam = ExplainedClassifier(vit).eval()(x)
        torch.testing.assert_close(probs, vit(x).softmax(dim=-1), atol=1e-5, rtol=0)
    for out in (heat, cam):
        assert out.shape == (3, 32, 32)
        assert out.min() >= 0 and torch.allclose(out.amax(dim=(1, 2)), torch.ones(3))
    assert OUTPUT_NAMES == ("probabilities", "heatmap", "gradcam")


def test_closed_form_gradcam_equals_autograd():
    vit = tiny_vit()
    x = torch.randn(4, 3, 32, 32)
    reference = autograd_gradcam(vit, x)
    with torch.no_grad():
        features = vit.forward_features(x)
        ours = ExplainedClassifier(vit).gradcam_tokens(features, vit.forward_head(features))
    assert reference.abs().max() > 1e-3  # not trivially zero
    torch.testing.assert_close(ours, reference, atol=1e-5, rtol=1e-4)


class GridViT(torch.nn.Module):
    """The ViT with its last patch tokens shaped [N, D, G, G] at ``grid``, the layout MONAI's CAMs expect."""

    def __init__(self, vit: VisionTransformer):
        super().__init__()
        self.vit, self.grid = vit, torch.nn.Identity()

    def forward(self, x):
        features = self.vit.forward_features(x)[:, self.vit.num_prefix_tokens :]  # [N, P, D]
        g = self.vit.patch_embed.grid_size
        grid = self.grid(features.transpose(1, 2).reshape(len(x), -1, *g))  # [N, D, G, G]
        return self.vit.head(self.vit.fc_norm(grid.flatten(2).mean(dim=2)))  # [N, C]


def test_closed_form_gradcam_equals_monai():
    vit = tiny_vit()
    x = torch.randn(3, 3, 32, 32)
    cam = GradCAM(GridViT(vit), target_layers="grid", upsampler=lambda size: lambda m: m, postprocessing=lambda m: m)
    # one image per call: on a batch MONAI back-propagates the sum of every image's score for
    # every predicted class (logits[:, class_idx] is [N, N])
    reference = torch.cat([cam(image[None]) for image in x])[:, 0].flatten(1)  # [N, G*G], raw
    with torch.no_grad():
        features = vit.forward_features(x)
        ours = ExplainedClassifier(vit).gradcam_tokens(features, vit.forward_head(features))
    torch.testing.assert_close(ours, reference, atol=1e-5, rtol=1e-4)


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
        _, heat, _ = ExplainedClassifier(vit)(torch.randn(2, 3, 32, 32))
    assert heat.abs().max() < 1e-3


def test_a_map_that_is_zero_everywhere_stays_zero():
    vit = tiny_vit()
    with torch.no_grad():
        vit.head.weight.zero_()  # no gradient anywhere: Grad-CAM is ReLU(0) = 0
        _, _, cam = ExplainedClassifier(vit)(torch.randn(2, 3, 32, 32))
    assert torch.equal(cam, torch.zeros_like(cam))


def test_models_without_a_class_token_are_refused():
    vit = VisionTransformer(**ENCODER, num_classes=2, class_token=False, global_pool="avg")
    with pytest.raises(VfmError, match="class token"):
        ExplainedClassifier(vit)


def test_class_token_pooling_is_refused_for_gradcam():
    with pytest.raises(VfmError, match="Grad-CAM in closed form needs average pooling.*'token'"):
        ExplainedClassifier(build_vit_classifier(ENCODER, num_classes=2, global_pool="token"))


def test_export_parity_with_another_batch_size(tmp_path):
    model = ExplainedClassifier(tiny_vit())
    report = export_onnx(
        model,
        {"pixels": torch.randn(2, 3, 32, 32)},
        list(OUTPUT_NAMES),
        tmp_path / "model.onnx",
        parity_inputs={"pixels": torch.randn(5, 3, 32, 32)},
    )
    assert report["passed"] and report["n_inputs"] == 5 and report["opset"] == 18
    assert report["files"] == [str(tmp_path / "model.onnx")]
    assert report["outputs"]["probabilities"]["shape"] == [5, 4]
    assert report["outputs"]["heatmap"]["shape"] == report["outputs"]["gradcam"]["shape"] == [5, 32, 32]
    for out in report["outputs"].values():
        assert out["max_abs_err"] <= 1e-4
    graph = onnx.load(tmp_path / "model.onnx").graph
    assert [i.name for i in graph.input] == ["pixels"]
    assert [o.name for o in graph.output] == list(OUTPUT_NAMES)
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
