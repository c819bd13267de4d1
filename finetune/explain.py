"""Attention rollout and Grad-CAM for a timm ViT classifier, as one exportable module.

``ExplainedClassifier`` runs the ViT block by block with each block's own modules, computing
the attention weights explicitly so that it can return them. Its probabilities equal
``softmax(vit(x))``; it returns two heat-maps, each upsampled bilinearly from the patch grid to
the image and min-max normalised per image (see ``FLAT_SPREAD`` for nearly flat maps):

- **rollout** (Abnar & Zuidema 2020): the class token's attention over the patches, multiplied
  through the layers (heads averaged, residual path added). Class-agnostic.
- **Grad-CAM** (Selvaraju et al. 2017) of the predicted class on the last block's patch tokens
  ``A`` [T, D], computed in closed form in the forward graph, because ONNX has no autograd. With
  average pooling the class score is ``y_c = w_c . fc_norm(mean_t A_t) + b_c``, so its gradient
  is the same for every token, ``g = J_fc_norm(mean_t A_t)^T w_c / T`` (LayerNorm's
  vector-Jacobian product, ``_layer_norm_vjp``), the Grad-CAM channel weights are ``g`` itself
  and the map is ``ReLU(A_t . g)`` per token. Class-specific.

Grad-CAM needs timm's ``global_pool="avg"`` (vfm's default): with ``"token"`` the score depends
on the class token alone and the last block's patch tokens get no gradient.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.layers import Attention
from timm.models.vision_transformer import Block, VisionTransformer

from vfm.platform.errors import VfmError

OUTPUT_NAMES = ("probabilities", "heatmap", "gradcam")
"""The outputs of ``ExplainedClassifier.forward``, in order (the plugin manifest's output names)."""

FLAT_SPREAD = 0.01
"""A heat-map whose spread (max - min) is under this share of its peak is not stretched to [0, 1]:
it stays below 1 instead of amplifying rounding noise (which would also break ONNX parity)."""

_ZERO_SPREAD = 1e-12  # a map that is 0 everywhere (Grad-CAM after ReLU) stays 0 rather than NaN


def _check_vit(vit: VisionTransformer) -> None:
    """VfmError unless ``vit`` is a plain timm ViT with a class token and an average-pooled linear head."""
    fix = "build the classifier with vfm.finetune.vit_classifier.build_vit_classifier (global_pool='avg')"
    plain = all(
        type(b) is Block and type(b.attn) is Attention and getattr(b.attn, "gate", None) is None for b in vit.blocks
    )
    if not (plain and vit.has_class_token and not vit.dynamic_img_size):
        raise VfmError(
            "attention rollout needs a timm ViT with a class token, plain Attention blocks and a fixed image size",
            where=type(vit).__name__,
            fix=fix,
        )
    avg_head = (
        vit.global_pool == "avg"
        and vit.attn_pool is None
        and not vit.pool_include_prefix
        and isinstance(vit.head, nn.Linear)
        and isinstance(vit.fc_norm, (nn.LayerNorm, nn.Identity))
    )
    if not avg_head:
        raise VfmError(
            f"Grad-CAM in closed form needs average pooling of the patch tokens into a linear head, "
            f"not global_pool={vit.global_pool!r}",
            where=type(vit).__name__,
            fix=fix,
        )


def _layer_norm_vjp(norm: nn.Module, x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``J^T v`` for ``norm`` (LayerNorm or Identity) at ``x``. x, v: [N, D] -> [N, D].

    For ``y = weight * (x - mu) / sigma + bias``: with ``u = v * weight`` and ``x_hat`` the
    normalised input, ``J^T v = (u - mean(u) - x_hat * mean(u * x_hat)) / sigma``.
    """
    if isinstance(norm, nn.Identity):
        return v
    mu = x.mean(dim=-1, keepdim=True)  # [N, 1]
    inv_sigma = torch.rsqrt(x.var(dim=-1, unbiased=False, keepdim=True) + norm.eps)  # [N, 1]
    x_hat = (x - mu) * inv_sigma  # [N, D]
    u = v if norm.weight is None else v * norm.weight  # [N, D]
    return inv_sigma * (u - u.mean(dim=-1, keepdim=True) - x_hat * (u * x_hat).mean(dim=-1, keepdim=True))


def _to_image(tokens: torch.Tensor, grid: tuple[int, int], size: tuple[int, int]) -> torch.Tensor:
    """Per-patch scores [N, G*G], >= 0 -> heat-map [N, S, S] in [0, 1] (bilinear, min-max per image)."""
    heat = tokens.reshape(-1, 1, grid[0], grid[1])  # [N, 1, G, G]
    heat = F.interpolate(heat, size=size, mode="bilinear", align_corners=False)[:, 0]  # [N, S, S]
    lo = heat.amin(dim=(1, 2), keepdim=True)  # [N, 1, 1]
    hi = heat.amax(dim=(1, 2), keepdim=True)  # [N, 1, 1]
    spread = torch.maximum(hi - lo, FLAT_SPREAD * hi).clamp(min=_ZERO_SPREAD)  # [N, 1, 1]
    return (heat - lo) / spread  # [N, S, S] in [0, 1]


class ExplainedClassifier(nn.Module):
    """pixels: [N, 3, S, S] -> (probabilities [N, C], heatmap [N, S, S], gradcam [N, S, S]).

    ``heatmap`` is the attention rollout, ``gradcam`` the Grad-CAM of the arg-max class, both in
    [0, 1]; the names and order are ``OUTPUT_NAMES``.
    """

    def __init__(self, vit: VisionTransformer):
        super().__init__()
        _check_vit(vit)
        self.vit = vit

    def block_with_attention(self, blk: Block, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """timm's ``Block.forward`` with explicit attention. x: [N, T, D] -> (x [N, T, D], attn [N, H, T, T])."""
        a = blk.attn
        n, t, _ = x.shape
        qkv = a.qkv(blk.norm1(x)).reshape(n, t, 3, a.num_heads, a.head_dim)  # [N, T, 3, H, hd]
        qkv = qkv.permute(2, 0, 3, 1, 4)  # [3, N, H, T, hd]
        q, k, v = qkv.unbind(0)  # [N, H, T, hd] each
        q, k = a.q_norm(q), a.k_norm(k)
        attn = ((q * a.scale) @ k.transpose(-2, -1)).softmax(dim=-1)  # [N, H, T, T]
        out = (attn @ v).transpose(1, 2).reshape(n, t, a.num_heads * a.head_dim)  # [N, T, H*hd]
        out = a.proj(a.norm(out))  # [N, T, D]
        x = x + blk.drop_path1(blk.ls1(out))
        x = x + blk.drop_path2(blk.ls2(blk.mlp(blk.norm2(x))))  # [N, T, D]
        return x, attn

    def gradcam_tokens(self, features: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        """Grad-CAM of the arg-max class per patch, before upsampling and normalisation.

        features: [N, T, D], ``vit.forward_features`` (the tokens the head pools);
        logits: [N, C], ``vit.forward_head(features)`` -> [N, P] with P = T - prefix tokens, >= 0.
        """
        vit = self.vit
        patches = features[:, vit.num_prefix_tokens :]  # [N, P, D], A
        pooled = patches.mean(dim=1)  # [N, D]
        w = vit.head.weight[logits.argmax(dim=-1)]  # [N, D], the predicted class's head row
        g = _layer_norm_vjp(vit.fc_norm, pooled, w) / patches.shape[1]  # [N, D], dy_c / dA_t for every t
        return F.relu((patches @ g[:, :, None])[..., 0])  # [N, P]

    def forward(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        vit = self.vit
        x = vit.norm_pre(vit.patch_drop(vit._pos_embed(vit.patch_embed(pixels))))  # [N, T, D], T = prefix + G*G
        eye = torch.eye(x.shape[1], device=x.device, dtype=x.dtype)  # [T, T]
        rollout = eye.expand(x.shape[0], -1, -1)  # [N, T, T]
        for blk in vit.blocks:
            x, attn = self.block_with_attention(blk, x)
            step = attn.mean(dim=1) + eye  # [N, T, T]: average heads, add the residual path
            rollout = (step / step.sum(dim=-1, keepdim=True)) @ rollout  # [N, T, T]
        features = vit.norm(x)  # [N, T, D]
        logits = vit.forward_head(features)  # [N, C]

        grid, size = vit.patch_embed.grid_size, pixels.shape[-2:]
        heatmap = _to_image(rollout[:, 0, vit.num_prefix_tokens :], grid, size)  # [N, S, S], cls -> patches
        gradcam = _to_image(self.gradcam_tokens(features, logits), grid, size)  # [N, S, S]
        return logits.softmax(dim=-1), heatmap, gradcam
