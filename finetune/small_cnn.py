"""A small CNN baseline for image classification, with the model-component signature.

Used to show what the pretrained ViT buys over a plain convolutional network on the same
labels: ``plugin.with_components(model="vfm.finetune.small_cnn:build_small_cnn")``.
"""

from __future__ import annotations

import torch
from torch import nn


class SmallCnn(nn.Module):
    """Four blocks of (conv-BN-ReLU) x2 + max-pool, global average pool, linear head.

    ``x: [N, 3, S, S] -> logits [N, C]``. Exposes what the fine-tuning engine uses of
    timm's model API: ``global_pool``, ``head``, ``no_weight_decay``.
    """

    def __init__(self, num_classes: int, width: int = 16):
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        for out in (width, width * 2, width * 4, width * 4):
            layers += [
                nn.Conv2d(channels, out, 3, padding=1, bias=False),
                nn.BatchNorm2d(out),
                nn.ReLU(),
                nn.Conv2d(out, out, 3, padding=1, bias=False),
                nn.BatchNorm2d(out),
                nn.ReLU(),
                nn.MaxPool2d(2, ceil_mode=True),
            ]
            channels = out
        self.features = nn.Sequential(*layers)
        self.global_pool = "avg"
        self.head = nn.Linear(channels, num_classes)

    def no_weight_decay(self) -> set[str]:
        return set()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).mean(dim=(2, 3)))  # [N, C]


def build_small_cnn(
    encoder_cfg: dict, num_classes: int, drop_path_rate: float = 0.0, global_pool: str = "avg"
) -> SmallCnn:
    """The ``model`` component signature; the CNN ignores the ViT shape and drop path."""
    return SmallCnn(num_classes)
