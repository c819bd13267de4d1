"""LoRA fine-tuning of a timm ViT through ``peft``, merged back into a plain ViT for saving.

``add_lora`` wraps the classifier in a ``peft.PeftModel``: every linear layer of the
transformer blocks (``attn.qkv``, ``attn.proj``, ``mlp.fc1``, ``mlp.fc2``) gets a rank-``r``
update ``(alpha / r) * B @ A`` (B starts at zero, so training starts from the pretrained model),
and only those updates and the classifier head (``fc_norm`` + ``head``) train. ``merge_lora``
folds the updates into the base weights, so the saved ``classifier.safetensors`` is an ordinary
timm state dict: ``load_classifier`` and the ONNX export never see LoRA.
"""

from __future__ import annotations

import torch
from peft import LoraConfig, PeftModel, get_peft_model

from vfm.platform.errors import VfmError

TARGETS = r"blocks\.\d+\.(attn\.(qkv|proj)|mlp\.(fc1|fc2))"
"""Module names (``re.fullmatch``) that get adapters. A regex, because the plain name ``proj``
would also match the patch embedding's ``patch_embed.proj`` convolution."""

HEAD = ("fc_norm.", "head.")
"""Parameter-name prefixes that train next to the adapters."""


def add_lora(model: torch.nn.Module, *, r: int = 8, alpha: int = 16, dropout: float = 0.0) -> PeftModel:
    """``model`` with LoRA adapters on its block linears; everything else frozen but the head.

    The returned ``PeftModel`` calls ``model`` (modified in place) and forwards attribute access
    to it (``no_weight_decay``, ``head``, ...).
    """
    config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=TARGETS, bias="none")
    try:
        wrapped = get_peft_model(model, config)
    except ValueError as err:
        raise VfmError(
            f"no LoRA target layers in {type(model).__name__}: {err}",
            where="FinetuneSettings.mode",
            fix="LoRA needs timm ViT blocks (blocks.N.attn.qkv, ...); use mode full or linear",
        ) from err
    for name, p in wrapped.get_base_model().named_parameters():
        if name.startswith(HEAD):
            p.requires_grad = True
    return wrapped


def merge_lora(model: PeftModel) -> torch.nn.Module:
    """Fold the adapters into the base weights: -> the plain model (same keys as before ``add_lora``)."""
    return model.merge_and_unload()
