"""Masked autoencoder (MAE, He et al. 2021) on a timm ViT, as RETFound pretrains it.

Four named steps: ``random_masking`` keeps a random subset of patches, ``forward_encoder``
runs the ViT on the visible patches only, ``forward_decoder`` fills in mask tokens and
predicts every patch's pixels, ``forward_loss`` scores the masked patches. The masking
noise may be passed in, so that training can draw it per sample from a seed (identical
masks on any number of devices and after a resume).

The encoder's parameter names are timm's ``VisionTransformer`` names, so
``encoder_state_dict()`` loads with ``strict=True`` into
``VisionTransformer(**encoder_config(), num_classes=0, global_pool="token")``. With
``global_pool="avg"`` timm replaces ``norm`` by a fresh ``fc_norm`` after pooling: the
checkpoint's ``norm.*`` is then unused and ``fc_norm.*`` starts from its init (the
MAE/RETFound fine-tuning recipe).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
from timm.layers import LayerNorm, PatchEmbed
from timm.models.vision_transformer import Block

from vfm.platform.errors import VfmError

_PRESETS = {
    # name: (patch, width, depth, heads, decoder width, decoder depth, decoder heads)
    "small": (16, 384, 12, 6, 256, 4, 8),
    "base": (16, 768, 12, 12, 512, 8, 16),
    "large": (16, 1024, 24, 16, 512, 8, 16),
}

PRESET_FIELDS = (
    "patch_size",
    "embed_dim",
    "depth",
    "num_heads",
    "decoder_embed_dim",
    "decoder_depth",
    "decoder_num_heads",
)
"""The :class:`MaeConfig` fields a preset sets (the rows of ``_PRESETS``, in order)."""

SHAPE_FIELDS = (*PRESET_FIELDS, "mask_ratio")
"""The :class:`MaeConfig` fields a configuration may set over a preset."""


@dataclass
class MaeConfig:
    img_size: int = 224
    patch_size: int = 16
    in_chans: int = 3
    embed_dim: int = 1024
    depth: int = 24
    num_heads: int = 16
    decoder_embed_dim: int = 512
    decoder_depth: int = 8
    decoder_num_heads: int = 16
    mlp_ratio: float = 4.0
    mask_ratio: float = 0.75
    norm_pix_loss: bool = True

    def __post_init__(self):
        if self.img_size % self.patch_size:
            raise VfmError(
                f"img_size {self.img_size} is not a multiple of patch_size {self.patch_size}",
                where="MaeConfig.img_size",
                fix="pick an img_size divisible by the patch size",
            )
        for dim, heads, field in (
            (self.embed_dim, self.num_heads, "num_heads"),
            (self.decoder_embed_dim, self.decoder_num_heads, "decoder_num_heads"),
        ):
            if dim % heads:
                raise VfmError(
                    f"width {dim} is not divisible by {heads} heads",
                    where=f"MaeConfig.{field}",
                    fix="choose a head count that divides the width",
                )
        if not 0.0 <= self.mask_ratio < 1.0:
            raise VfmError(
                f"mask_ratio {self.mask_ratio} is outside [0, 1)",
                where="MaeConfig.mask_ratio",
                fix="use a ratio such as 0.75",
            )

    def encoder_config(self) -> dict:
        """Keyword arguments for ``timm.models.vision_transformer.VisionTransformer``."""
        return dict(
            img_size=self.img_size,
            patch_size=self.patch_size,
            in_chans=self.in_chans,
            embed_dim=self.embed_dim,
            depth=self.depth,
            num_heads=self.num_heads,
            mlp_ratio=self.mlp_ratio,
            qkv_bias=True,
        )

    @classmethod
    def preset(cls, name: str, img_size: int = 224, **overrides) -> MaeConfig:
        """Named sizes: "tiny" (tests, 16-64 tokens), "small" (ViT-S/16), "base" (ViT-B/16),
        "large" (ViT-L/16, the RETFound encoder); ``overrides`` replace fields of the preset (None:
        keep the preset's value), e.g. ``patch_size=8`` for a finer grid than tiny picks."""
        if name == "tiny":
            patch = next((p for p in (8, 4, 16, 32) if img_size % p == 0 and 16 <= (img_size // p) ** 2 <= 64), None)
            if patch is None:
                raise VfmError(
                    f"no patch size gives 16-64 tokens for img_size {img_size}",
                    where="MaeConfig.preset('tiny')",
                    fix="use img_size 16, 32, 64, 128 or 224",
                )
            shape = (patch, 64, 4, 4, 64, 2, 4)
        elif name in _PRESETS:
            shape = _PRESETS[name]
        else:
            raise VfmError(
                f"unknown MAE preset {name!r}", where="MaeConfig.preset", fix=f"use one of {['tiny', *_PRESETS]}"
            )
        chosen = {k: v for k, v in overrides.items() if v is not None}
        return cls(img_size=img_size, **{**dict(zip(PRESET_FIELDS, shape, strict=True)), **chosen})


def sincos_pos_embed(dim: int, grid: int, cls_token: bool = True) -> torch.Tensor:
    """Fixed 2-D sine-cosine position embedding: [grid*grid (+1), dim], a zero row for cls.

    Half of ``dim`` encodes the row, half the column; each half is sin | cos of
    the position times frequencies 1 / 10000^(k / (dim/4)).
    """
    if dim % 4:
        raise VfmError(
            f"width {dim} is not a multiple of 4", where="sincos_pos_embed", fix="use an embedding width divisible by 4"
        )
    omega = 1.0 / 10000 ** (torch.arange(dim // 4, dtype=torch.float64) / (dim / 4))  # [D/4]
    rows, cols = torch.meshgrid(
        torch.arange(grid, dtype=torch.float64), torch.arange(grid, dtype=torch.float64), indexing="ij"
    )  # [G, G] each

    def encode(pos: torch.Tensor) -> torch.Tensor:
        angles = pos.reshape(-1, 1) * omega  # [G*G, D/4]
        return torch.cat([angles.sin(), angles.cos()], dim=1)  # [G*G, D/2]

    emb = torch.cat([encode(cols), encode(rows)], dim=1)  # [G*G, D], width half first as in MAE
    if cls_token:
        emb = torch.cat([torch.zeros(1, dim, dtype=emb.dtype), emb], dim=0)  # [1+G*G, D]
    return emb.float()


class MaskedAutoencoderViT(nn.Module):
    def __init__(self, cfg: MaeConfig):
        super().__init__()
        self.cfg = cfg
        grid = cfg.img_size // cfg.patch_size
        block = dict(mlp_ratio=cfg.mlp_ratio, qkv_bias=True, norm_layer=LayerNorm)  # eps 1e-6, as timm's ViT

        # encoder: timm VisionTransformer names
        self.patch_embed = PatchEmbed(cfg.img_size, cfg.patch_size, cfg.in_chans, cfg.embed_dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, cfg.embed_dim))
        self.pos_embed = nn.Parameter(sincos_pos_embed(cfg.embed_dim, grid)[None], requires_grad=False)
        self.blocks = nn.ModuleList([Block(cfg.embed_dim, cfg.num_heads, **block) for _ in range(cfg.depth)])
        self.norm = LayerNorm(cfg.embed_dim)

        # decoder: its own width and depth
        self.decoder_embed = nn.Linear(cfg.embed_dim, cfg.decoder_embed_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, cfg.decoder_embed_dim))
        self.decoder_pos_embed = nn.Parameter(sincos_pos_embed(cfg.decoder_embed_dim, grid)[None], requires_grad=False)
        self.decoder_blocks = nn.ModuleList(
            [Block(cfg.decoder_embed_dim, cfg.decoder_num_heads, **block) for _ in range(cfg.decoder_depth)]
        )
        self.decoder_norm = LayerNorm(cfg.decoder_embed_dim)
        self.decoder_pred = nn.Linear(cfg.decoder_embed_dim, cfg.patch_size**2 * cfg.in_chans)
        self._init_weights()

    def _init_weights(self):
        w = self.patch_embed.proj.weight
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))  # like a Linear on flattened patches
        nn.init.normal_(self.cls_token, std=0.02)
        nn.init.normal_(self.mask_token, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def encoder_config(self) -> dict:
        """Keyword arguments for ``timm.models.vision_transformer.VisionTransformer``."""
        return self.cfg.encoder_config()

    def encoder_state_dict(self) -> dict[str, torch.Tensor]:
        """The encoder's weights under timm names (``pos_embed`` includes the cls position)."""
        return {
            k: v.detach().clone()
            for k, v in self.state_dict().items()
            if not (k.startswith("decoder_") or k == "mask_token")
        }

    def patchify(self, imgs: torch.Tensor) -> torch.Tensor:
        """imgs: [N, C, H, W] -> [N, L, p*p*C], patches in row-major order, pixels (p, q, c)."""
        p, c = self.cfg.patch_size, self.cfg.in_chans
        n, g = imgs.shape[0], imgs.shape[2] // p
        x = imgs.reshape(n, c, g, p, g, p)  # [N, C, G, p, G, p]
        return torch.einsum("nchpwq->nhwpqc", x).reshape(n, g * g, p * p * c)  # [N, L, p*p*C]

    def unpatchify(self, x: torch.Tensor) -> torch.Tensor:
        """x: [N, L, p*p*C] -> imgs [N, C, H, W]."""
        p, c = self.cfg.patch_size, self.cfg.in_chans
        n, g = x.shape[0], int(x.shape[1] ** 0.5)
        x = x.reshape(n, g, g, p, p, c)  # [N, G, G, p, p, C]
        return torch.einsum("nhwpqc->nchpwq", x).reshape(n, c, g * p, g * p)  # [N, C, H, W]

    def random_masking(self, x: torch.Tensor, mask_ratio: float, noise: torch.Tensor | None = None):
        """Keep the round(L * (1 - mask_ratio)) patches with the smallest noise in each sample.

        x: [N, L, D], noise: [N, L] (uniform from the global RNG when None) -> x_masked [N, L_keep, D],
        mask [N, L] (0 keep, 1 remove), ids_restore [N, L] (the permutation that undoes the shuffle).
        """
        n, length, dim = x.shape
        len_keep = round(length * (1 - mask_ratio))
        if noise is None:
            noise = torch.rand(n, length, device=x.device)  # [N, L]
        ids_shuffle = torch.argsort(noise, dim=1)  # [N, L], ascending: small noise is kept
        ids_restore = torch.argsort(ids_shuffle, dim=1)  # [N, L]
        ids_keep = ids_shuffle[:, :len_keep]  # [N, L_keep]
        x_masked = torch.gather(x, 1, ids_keep[..., None].expand(-1, -1, dim))  # [N, L_keep, D]
        mask = torch.ones(n, length, device=x.device)  # [N, L]
        mask[:, :len_keep] = 0
        mask = torch.gather(mask, 1, ids_restore)  # [N, L] back in patch order
        return x_masked, mask, ids_restore

    def forward_encoder(self, imgs: torch.Tensor, mask_ratio: float, noise: torch.Tensor | None = None):
        """imgs: [N, C, H, W], noise: [N, L] or None -> latent [N, 1+L_keep, D], mask [N, L], ids_restore [N, L]."""
        x = self.patch_embed(imgs) + self.pos_embed[:, 1:]  # [N, L, D]
        x, mask, ids_restore = self.random_masking(x, mask_ratio, noise)  # [N, L_keep, D]
        cls = (self.cls_token + self.pos_embed[:, :1]).expand(x.shape[0], -1, -1)  # [N, 1, D]
        x = torch.cat([cls, x], dim=1)  # [N, 1+L_keep, D]
        for blk in self.blocks:
            x = blk(x)
        return self.norm(x), mask, ids_restore

    def forward_decoder(self, latent: torch.Tensor, ids_restore: torch.Tensor) -> torch.Tensor:
        """latent: [N, 1+L_keep, D], ids_restore: [N, L] -> pred [N, L, p*p*C]."""
        x = self.decoder_embed(latent)  # [N, 1+L_keep, Dd]
        n, length = ids_restore.shape
        masks = self.mask_token.expand(n, length + 1 - x.shape[1], -1)  # [N, L-L_keep, Dd]
        patches = torch.cat([x[:, 1:], masks], dim=1)  # [N, L, Dd] in shuffled order
        patches = torch.gather(patches, 1, ids_restore[..., None].expand(-1, -1, x.shape[2]))  # unshuffle
        x = torch.cat([x[:, :1], patches], dim=1) + self.decoder_pos_embed  # [N, 1+L, Dd]
        for blk in self.decoder_blocks:
            x = blk(x)
        return self.decoder_pred(self.decoder_norm(x))[:, 1:]  # [N, L, p*p*C]

    def forward_loss(self, imgs: torch.Tensor, pred: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Mean squared error over the masked patches only.

        imgs: [N, C, H, W], pred: [N, L, p*p*C], mask: [N, L] (0 keep, 1 remove). With
        ``norm_pix_loss`` the target is each patch normalised by its own mean and std.
        """
        target = self.patchify(imgs)  # [N, L, p*p*C]
        if self.cfg.norm_pix_loss:
            mean = target.mean(dim=-1, keepdim=True)  # [N, L, 1]
            var = target.var(dim=-1, keepdim=True)  # [N, L, 1]
            target = (target - mean) / (var + 1e-6) ** 0.5
        per_patch = ((pred.float() - target) ** 2).mean(dim=-1)  # [N, L]
        return (per_patch * mask).sum() / mask.sum()

    def pred_to_pixels(self, imgs: torch.Tensor, pred: torch.Tensor) -> torch.Tensor:
        """The prediction as an image [N, C, H, W]; undoes ``norm_pix_loss`` with the true patch stats."""
        pred = pred.float()  # [N, L, p*p*C]
        if self.cfg.norm_pix_loss:
            target = self.patchify(imgs)  # [N, L, p*p*C]
            pred = pred * (target.var(dim=-1, keepdim=True) + 1e-6) ** 0.5 + target.mean(dim=-1, keepdim=True)
        return self.unpatchify(pred)

    def forward(self, imgs: torch.Tensor, mask_ratio: float | None = None, noise: torch.Tensor | None = None):
        """imgs: [N, C, H, W], noise: [N, L] or None -> (loss scalar, pred [N, L, p*p*C], mask [N, L])."""
        ratio = self.cfg.mask_ratio if mask_ratio is None else mask_ratio
        latent, mask, ids_restore = self.forward_encoder(imgs, ratio, noise)
        pred = self.forward_decoder(latent, ids_restore)
        return self.forward_loss(imgs, pred, mask), pred, mask
