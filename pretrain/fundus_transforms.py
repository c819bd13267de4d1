"""MAE augmentations as MONAI transforms, for the pretraining data pipeline.

``AntialiasedResize`` is torch's antialiased interpolation; on 8-bit pixels its bilinear kernel
reproduces Pillow's ``BILINEAR`` (the serving resize) to within one grey level (fixed-point
rounding, on a few pixels; ``tests/pretrain/test_fundus_transforms.py`` checks both bounds).

``mae_augment`` is MAE's augmentation: a random resized crop (0.2-1.0 of the area, aspect
3/4-4/3, bicubic) and a horizontal flip. ``augment_batch`` draws each sample's randomness from
its own seed, so an image's augmentation does not depend on the batch, the rank or a resume.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from monai.transforms import Compose, Randomizable, RandomizableTransform, Transform
from monai.utils import convert_to_tensor


class AntialiasedResize(Transform):
    """Resize to ``size`` x ``size`` with torch's antialiased interpolation; keeps the dtype.

    On uint8 pixels the bilinear kernel is Pillow's ``BILINEAR`` (the serving resize) to within
    one grey level. MONAI's ``Resize`` smooths with a Gaussian before downsampling instead, which
    differs from Pillow by more.

    Args:
        size: output side S.
        mode: ``"bilinear"`` or ``"bicubic"``.
    """

    def __init__(self, size: int, mode: str = "bilinear"):
        self.size, self.mode = size, mode

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        """img: [C, H, W] -> [C, S, S]."""
        x = convert_to_tensor(img, track_meta=False).contiguous()[None]  # [1, C, H, W]; a crop view is slow
        if x.shape[-2:] == (self.size, self.size):
            return x[0]
        return F.interpolate(x, size=(self.size, self.size), mode=self.mode, antialias=True, align_corners=False)[0]


class RandResizedCrop(Randomizable, Transform):
    """MAE's random resized crop: a box of ``scale`` x the area and aspect ratio in ``ratio``
    (log-uniform), resized to ``size`` x ``size``; after 10 misses, the largest central box
    within ``ratio`` (the torchvision recipe).

    Args:
        size: output side S.
        scale: range of the box's share of the image area.
        ratio: range of the box's width / height.
        mode: interpolation of the resize, ``"bicubic"`` as MAE.
    """

    def __init__(
        self,
        size: int,
        scale: tuple[float, float] = (0.2, 1.0),
        ratio: tuple[float, float] = (3 / 4, 4 / 3),
        mode: str = "bicubic",
    ):
        self.scale, self.log_ratio = scale, (math.log(ratio[0]), math.log(ratio[1]))
        self.resize = AntialiasedResize(size, mode)
        self.box = (0, 0, size, size)

    def randomize(self, data: torch.Tensor) -> None:
        """Pick ``self.box = (top, left, height, width)`` for data [C, H, W]."""
        height, width = data.shape[1:]
        for _ in range(10):
            area = height * width * self.R.uniform(*self.scale)
            aspect = math.exp(self.R.uniform(*self.log_ratio))
            w, h = round(math.sqrt(area * aspect)), round(math.sqrt(area / aspect))
            if 0 < w <= width and 0 < h <= height:
                self.box = (int(self.R.randint(0, height - h + 1)), int(self.R.randint(0, width - w + 1)), h, w)
                return
        low, high = math.exp(self.log_ratio[0]), math.exp(self.log_ratio[1])
        w, h = (
            (width, round(width / low))
            if width / height < low
            else ((round(height * high), height) if width / height > high else (width, height))
        )
        self.box = ((height - h) // 2, (width - w) // 2, h, w)

    def __call__(self, img: torch.Tensor, randomize: bool = True) -> torch.Tensor:
        """img: [C, H, W] -> [C, S, S]."""
        if randomize:
            self.randomize(img)
        top, left, h, w = self.box
        return self.resize(img[:, top : top + h, left : left + w])


class RandHorizontalFlip(RandomizableTransform):
    """Mirror left-right with probability ``prob``: MONAI's ``RandFlip(spatial_axis=1)`` without its
    metadata bookkeeping, which is slow for every image on a CPU.

    Args:
        prob: probability of flipping.
    """

    def __call__(self, img: torch.Tensor, randomize: bool = True) -> torch.Tensor:
        """img: [C, H, W] -> [C, H, W]."""
        if randomize:
            self.randomize(None)
        return img.flip(-1) if self._do_transform else img


def mae_augment(image_size: int, scale: tuple[float, float] = (0.2, 1.0)) -> Compose:
    """MAE's augmentation on a preprocessed image [3, S, S]: random resized crop and horizontal flip."""
    return Compose([RandResizedCrop(image_size, scale=scale), RandHorizontalFlip(prob=0.5)])


def augment_batch(augment: Compose, imgs: torch.Tensor, seeds: Sequence[int]) -> torch.Tensor:
    """Augment each image with the transform's random state seeded by its own seed.

    imgs: [N, C, S, S], seeds: N integers in [0, 2**32) -> [N, C, S, S].
    """
    out = []
    for img, seed in zip(imgs, seeds):
        augment.set_random_state(seed=int(seed))
        out.append(convert_to_tensor(augment(img), track_meta=False))  # [C, S, S]
    return torch.stack(out)
