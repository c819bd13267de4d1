"""Augmentation of fine-tuning batches, on the device, after the images are preprocessed.

Three optional steps, in this order (as in timm's and RETFound's training recipes):

1. ``augment_batch``: random horizontal flip + random resized crop, one affine resampling;
2. ``rand_augment``: RandAugment (Cubuk et al. 2020) per image;
3. mixup / cutmix over the batch (timm's ``Mixup``), which turns the integer labels into soft
   targets with label smoothing, to be scored by soft-target cross-entropy.

RandAugment is torchvision's ``transforms.v2.RandAugment`` rather than an op set of our own:
its 14 ops and magnitude scales are the reference ones (those of timm's ``rand-m9-n2``), they
run on float tensors on any device, so the batch never goes back to PIL or the dataloader. Its
photometric ops (brightness, solarize, posterize, equalize, ...) assume pixels in [0, 1], so the
normalised batch is mapped back with the run's mean/std, clipped to [0, 1], augmented and
normalised again; geometric ops fill with black. It is called once per image because on a batch
tensor torchvision draws one op sequence for the whole batch.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from timm.data import Mixup
from timm.data.mixup import mixup_target
from torchvision.transforms import v2


def augment_batch(x: torch.Tensor, min_area: float = 0.8) -> torch.Tensor:
    """Random horizontal flip + random resized crop (square, ``min_area``..1 of the image) per image.

    x: [N, C, S, S] -> [N, C, S, S], one affine resampling (bilinear) for both.
    """
    n = x.shape[0]
    side = torch.empty(n, device=x.device).uniform_(min_area, 1.0).sqrt()  # [N], crop side / image side
    flip = torch.where(torch.rand(n, device=x.device) < 0.5, -1.0, 1.0)  # [N]
    shift = (torch.rand(n, 2, device=x.device) * 2 - 1) * (1 - side)[:, None]  # [N, 2], crop centre
    theta = torch.zeros(n, 2, 3, device=x.device)  # [N, 2, 3], output -> input coordinates
    theta[:, 0, 0], theta[:, 1, 1], theta[:, :, 2] = side * flip, side, shift
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)  # [N, S, S, 2]
    return F.grid_sample(x, grid.to(x.dtype), mode="bilinear", padding_mode="border", align_corners=False)


def rand_augment(
    x: torch.Tensor, *, mean: Sequence[float], std: Sequence[float], num_ops: int = 2, magnitude: int = 9
) -> torch.Tensor:
    """RandAugment with its own random ops per image, in pixel space.

    x: [N, 3, S, S] normalised as ``(pixel - mean) / std`` with pixels in [0, 1] -> the same.
    """
    ops = v2.RandAugment(num_ops=num_ops, magnitude=magnitude, interpolation=v2.InterpolationMode.BILINEAR)
    mean_t = torch.as_tensor(mean, dtype=x.dtype, device=x.device)[:, None, None]  # [3, 1, 1]
    std_t = torch.as_tensor(std, dtype=x.dtype, device=x.device)[:, None, None]  # [3, 1, 1]
    pixels = (x * std_t + mean_t).clamp(0, 1)  # [N, 3, S, S] in [0, 1]
    return (torch.stack([ops(image) for image in pixels]) - mean_t) / std_t


class BatchAugment:
    """The training-batch augmentations a ``FinetuneSettings`` asks for, as one callable.

    Args:
        num_classes: C, for the soft targets of mixup/cutmix.
        crop_flip: apply ``augment_batch``.
        rand_augment: apply ``rand_augment`` with ``num_ops`` ops of strength ``magnitude`` (0..30).
        mixup, cutmix: Beta(alpha, alpha) parameters; 0 disables; with both, each batch uses one
            of them at random (timm's switch probability 0.5).
        label_smoothing: folded into the soft targets when mixing.
        mean, std: the normalisation of the batches (3 values each); None: pixels in [0, 1].
    """

    def __init__(
        self,
        num_classes: int,
        *,
        crop_flip: bool = True,
        rand_augment: bool = False,
        num_ops: int = 2,
        magnitude: int = 9,
        mixup: float = 0.0,
        cutmix: float = 0.0,
        label_smoothing: float = 0.0,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
    ):
        self.num_classes, self.crop_flip, self.rand_augment = num_classes, crop_flip, rand_augment
        self.num_ops, self.magnitude, self.label_smoothing = num_ops, magnitude, label_smoothing
        self.mean = [0.0, 0.0, 0.0] if mean is None else list(mean)
        self.std = [1.0, 1.0, 1.0] if std is None else list(std)
        self.mixup = (
            Mixup(mixup_alpha=mixup, cutmix_alpha=cutmix, label_smoothing=label_smoothing, num_classes=num_classes)
            if mixup > 0 or cutmix > 0
            else None
        )

    @property
    def soft_targets(self) -> bool:
        """True when ``__call__`` returns soft targets [N, C] (mixup or cutmix on)."""
        return self.mixup is not None

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x: [N, 3, S, S], y: int64 [N] -> (x [N, 3, S, S], y int64 [N], or soft targets [N, C])."""
        if self.crop_flip:
            x = augment_batch(x)
        if self.rand_augment:
            x = rand_augment(x, mean=self.mean, std=self.std, num_ops=self.num_ops, magnitude=self.magnitude)
        return self._mix(x, y) if self.mixup is not None else (x, y)

    def _mix(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """timm mixes the batch with its reverse and needs an even size: an odd last sample stays unmixed."""
        m = len(x) - len(x) % 2
        mixed, soft = self.mixup(x[:m], y[:m])  # [m, 3, S, S], [m, C]; in place on x[:m]
        rest = mixup_target(y[m:], self.num_classes, 1.0, self.label_smoothing)  # [N - m, C]
        return torch.cat([mixed, x[m:]]), torch.cat([soft, rest])
