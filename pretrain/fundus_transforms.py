"""Fundus preprocessing and MAE augmentations as MONAI transforms, for the pretraining data pipeline.

``fundus_preprocess`` computes on tensors what the torch-free serving code
``vfm.plugins.retina.preprocess.preprocess`` computes with numpy and Pillow: crop the black
border around the field of view (``CropForeground``), pad to a centred square (``SpatialPad``),
resize, scale to [0, 1] and normalise per channel. Training and serving thus see the same
pixels: the resize is torch's antialiased bilinear kernel on 8-bit pixels, which reproduces
Pillow's ``BILINEAR`` to within one grey level (fixed-point rounding; under 0.3% of pixels).

``mae_augment`` is MAE's augmentation: a random resized crop (0.2-1.0 of the area, aspect
3/4-4/3, bicubic) and a horizontal flip. ``augment_batch`` draws each sample's randomness from
its own seed, so an image's augmentation does not depend on the batch, the rank or a resume.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from monai.transforms import (Compose, CropForeground, EnsureChannelFirst, EnsureType, NormalizeIntensity,
                              Randomizable, RandomizableTransform, ScaleIntensityRange, SpatialPad, Transform)
from monai.utils import convert_to_tensor

from vfm.plugins.retina.preprocess import ROW_TOLERANCE
from vfm.serve.image_preprocess import check_normalisation


class CropFieldOfView(Transform):
    """Crop the black border around the field of view, then pad with black to a centred square.

    As ``vfm.plugins.retina.preprocess.crop_to_field_of_view``: a pixel is bright when its
    brightest channel exceeds ``threshold``; a row (column) belongs to the field of view when more
    than 1% of it is bright. An image with no such row or column is returned unchanged.

    Args:
        threshold: brightness (0-255) above which a pixel is part of the field of view.
    """

    def __init__(self, threshold: int = 10):
        self.threshold = threshold
        self.crop = CropForeground(select_fn=self.field_of_view, allow_smaller=True)

    def field_of_view(self, img: torch.Tensor | np.ndarray) -> torch.Tensor | np.ndarray:
        """img: [C, H, W] -> bool [1, H, W], True on the rows x columns of the field of view."""
        bright = (img > self.threshold).any(0)  # [H, W]
        height, width = bright.shape
        rows = bright.sum(1) >= max(1, math.ceil(ROW_TOLERANCE * width))  # [H]
        cols = bright.sum(0) >= max(1, math.ceil(ROW_TOLERANCE * height))  # [W]
        return (rows[:, None] & cols[None, :])[None]  # [1, H, W]

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        """img: [C, H, W] -> [C, s, s], s the longer side of the field of view's bounding box."""
        if not self.field_of_view(img).any():
            return img
        cropped = self.crop(img)  # [C, h, w]
        side = max(cropped.shape[1:])
        return SpatialPad((side, side), method="symmetric")(cropped)  # [C, s, s], (s - h) // 2 rows on top


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
        x = convert_to_tensor(img, track_meta=False).contiguous()[None]  # [1, C, H, W]; a crop view is 8x slower
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

    def __init__(self, size: int, scale: tuple[float, float] = (0.2, 1.0),
                 ratio: tuple[float, float] = (3 / 4, 4 / 3), mode: str = "bicubic"):
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
        w, h = (width, round(width / low)) if width / height < low else (
            (round(height * high), height) if width / height > high else (width, height))
        self.box = ((height - h) // 2, (width - w) // 2, h, w)

    def __call__(self, img: torch.Tensor, randomize: bool = True) -> torch.Tensor:
        """img: [C, H, W] -> [C, S, S]."""
        if randomize:
            self.randomize(img)
        top, left, h, w = self.box
        return self.resize(img[:, top : top + h, left : left + w])


class RandHorizontalFlip(RandomizableTransform):
    """Mirror left-right with probability ``prob``: MONAI's ``RandFlip(spatial_axis=1)`` without its
    metadata bookkeeping, which costs ~15 ms per 224 px image on a CPU.

    Args:
        prob: probability of flipping.
    """

    def __call__(self, img: torch.Tensor, randomize: bool = True) -> torch.Tensor:
        """img: [C, H, W] -> [C, H, W]."""
        if randomize:
            self.randomize(None)
        return img.flip(-1) if self._do_transform else img


def fundus_preprocess(*, image_size: int, mean: Sequence[float], std: Sequence[float], crop_fov: bool = True,
                      threshold: int = 10) -> Compose:
    """The serving preprocessing as MONAI transforms: uint8 [H, W, 3] -> float32 [3, S, S].

    Args:
        image_size: side S of the model input.
        mean: per-channel mean on the [0, 1] scale.
        std: per-channel standard deviation on the [0, 1] scale.
        crop_fov: crop the black border around the field of view first.
        threshold: brightness above which a pixel is part of the field of view.

    Raises:
        VfmError: a malformed ``image_size`` or ``mean``/``std``.
    """
    check_normalisation(image_size, mean, std, "fundus_preprocess")
    return Compose([
        EnsureChannelFirst(channel_dim=-1),  # [3, H, W] uint8
        *([CropFieldOfView(threshold)] if crop_fov else []),  # [3, s, s]
        AntialiasedResize(image_size),  # [3, S, S] uint8
        ScaleIntensityRange(a_min=0.0, a_max=255.0, b_min=0.0, b_max=1.0),  # float32 in [0, 1]
        NormalizeIntensity(subtrahend=list(mean), divisor=list(std), channel_wise=True),
        EnsureType(data_type="tensor", track_meta=False),  # a plain torch.Tensor
    ])


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
