"""Attention rollout (Abnar & Zuidema 2020) for a timm ViT classifier, as one exportable module.

``ExplainedClassifier`` runs the ViT block by block with each block's own modules, computing
the attention weights explicitly so that it can return them, and multiplies them through the
layers. Its probabilities equal ``softmax(vit(x))``; its heat-map is the class token's
rolled-out attention over the patches, upsampled bilinearly to the image and min-max
normalised per image (see ``FLAT_SPREAD`` for nearly flat maps).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.layers import Attention
from timm.models.vision_transformer import Block, VisionTransformer

from vfm.platform.errors import VfmError

FLAT_SPREAD = 0.01
"""A heat-map whose spread (max - min) is under this share of its peak is not stretched to [0, 1]:
it stays below 1 instead of amplifying rounding noise (which would also break ONNX parity)."""


class ExplainedClassifier(nn.Module):
    """pixels: [N, 3, S, S] -> (probabilities [N, C], heatmap [N, S, S] in [0, 1])."""

    def __init__(self, vit: VisionTransformer):
        super().__init__()
        plain = all(type(b) is Block and type(b.attn) is Attention and getattr(b.attn, "gate", None) is None
                    for b in vit.blocks)
        if not (plain and vit.has_class_token and not vit.dynamic_img_size):
            raise VfmError("attention rollout needs a timm ViT with a class token, plain Attention blocks and a "
                           "fixed image size", where=type(vit).__name__,
                           fix="build the classifier with vfm.finetune.vit_classifier.build_vit_classifier")
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

    def forward(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        vit = self.vit
        x = vit.norm_pre(vit.patch_drop(vit._pos_embed(vit.patch_embed(pixels))))  # [N, T, D], T = prefix + G*G
        eye = torch.eye(x.shape[1], device=x.device, dtype=x.dtype)  # [T, T]
        rollout = eye.expand(x.shape[0], -1, -1)  # [N, T, T]
        for blk in vit.blocks:
            x, attn = self.block_with_attention(blk, x)
            step = attn.mean(dim=1) + eye  # [N, T, T]: average heads, add the residual path
            rollout = (step / step.sum(dim=-1, keepdim=True)) @ rollout  # [N, T, T]
        probs = vit.forward_head(vit.norm(x)).softmax(dim=-1)  # [N, C]

        grid = vit.patch_embed.grid_size
        cls_to_patches = rollout[:, 0, vit.num_prefix_tokens:]  # [N, G*G]
        heat = cls_to_patches.reshape(-1, 1, grid[0], grid[1])  # [N, 1, G, G]
        heat = F.interpolate(heat, size=pixels.shape[-2:], mode="bilinear", align_corners=False)[:, 0]  # [N, S, S]
        lo = heat.amin(dim=(1, 2), keepdim=True)  # [N, 1, 1]
        hi = heat.amax(dim=(1, 2), keepdim=True)  # [N, 1, 1], > 0: rollout rows are distributions
        spread = torch.maximum(hi - lo, FLAT_SPREAD * hi)  # [N, 1, 1]
        return probs, (heat - lo) / spread  # [N, S, S] in [0, 1]
