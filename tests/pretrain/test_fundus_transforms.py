"""MONAI fundus transforms: the same pixels as the numpy serving preprocessing; seedable MAE augmentation.

``fundus_preprocess`` (here, not in the library: nothing trains on it) computes on tensors what the
torch-free serving code ``vfm.plugins.retina.preprocess.preprocess`` computes with numpy and Pillow:
crop the black border around the field of view (``CropForeground``), pad to a centred square
(``SpatialPad``), resize, scale to [0, 1] and normalise per channel. It checks that the library's
``AntialiasedResize`` (the resize of the MAE augmentation) reproduces Pillow's ``BILINEAR``.
"""

import math
from collections.abc import Sequence

import numpy as np
import pytest
import torch
from monai.transforms import (
    Compose,
    CropForeground,
    EnsureChannelFirst,
    EnsureType,
    NormalizeIntensity,
    ScaleIntensityRange,
    SpatialPad,
    Transform,
)

from vfm.platform.errors import VfmError
from vfm.plugins.retina.preprocess import ROW_TOLERANCE, crop_to_field_of_view, preprocess
from vfm.plugins.retina.synthetic import generate
from vfm.pretrain.fundus_transforms import AntialiasedResize, RandResizedCrop, augment_batch, mae_augment
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


def fundus_preprocess(
    *, image_size: int, mean: Sequence[float], std: Sequence[float], crop_fov: bool = True, threshold: int = 10
) -> Compose:
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
    return Compose(
        [
            EnsureChannelFirst(channel_dim=-1),  # [3, H, W] uint8
            *([CropFieldOfView(threshold)] if crop_fov else []),  # [3, s, s]
            AntialiasedResize(image_size),  # [3, S, S] uint8
            ScaleIntensityRange(a_min=0.0, a_max=255.0, b_min=0.0, b_max=1.0),  # float32 in [0, 1]
            NormalizeIntensity(subtrahend=list(mean), divisor=list(std), channel_wise=True),
            EnsureType(data_type="tensor", track_meta=False),  # a plain torch.Tensor
        ]
    )


NORM = dict(mean=[0.45, 0.3, 0.2], std=[0.25, 0.2, 0.15])
GREY_LEVEL = 1 / 255 / min(NORM["std"])  # one 8-bit step after normalisation


def photographs() -> list[np.ndarray]:
    """Synthetic fundus photographs, some framed in a wide or tall black border with sensor noise."""
    images, _ = generate(4, seed=7, image_size=96)
    rng = np.random.default_rng(0)
    framed = []
    for i, img in enumerate(images):
        canvas = np.zeros((96 + 20 + 30 * (i % 2), 96 + 40 + 50 * (1 - i % 2), 3), dtype=np.uint8)
        canvas[10 : 10 + 96, 20 : 20 + 96] = img
        canvas[rng.integers(0, canvas.shape[0], 5), rng.integers(0, canvas.shape[1], 5)] = 200  # stray bright pixels
        framed.append(canvas)
    return [*images, *framed]


@pytest.mark.parametrize("size", [32, 64, 224])
@pytest.mark.parametrize("crop_fov", [True, False])
def test_monai_preprocessing_matches_numpy_serving_within_one_grey_level(size, crop_fov):
    monai_pipeline = fundus_preprocess(image_size=size, crop_fov=crop_fov, **NORM)
    diffs = []
    for img in photographs():
        served = preprocess(img, image_size=size, crop_fov=crop_fov, **NORM)  # [3, S, S]
        trained = monai_pipeline(img)
        assert isinstance(trained, torch.Tensor) and trained.dtype == torch.float32 and trained.shape == served.shape
        diffs.append(np.abs(trained.numpy() - served))
    diffs = np.stack(diffs)
    # Pillow and torch round their fixed-point bilinear sums differently on a few pixels
    assert diffs.max() <= GREY_LEVEL + 1e-5
    assert (diffs > 1e-5).mean() < 0.01


def test_crop_field_of_view_is_the_serving_crop_on_numpy_and_torch():
    crop = CropFieldOfView()
    for img in [*photographs(), np.zeros((20, 30, 3), dtype=np.uint8)]:
        expected = crop_to_field_of_view(img).transpose(2, 0, 1)  # [3, s, s]
        chw = np.ascontiguousarray(img.transpose(2, 0, 1))
        np.testing.assert_array_equal(np.asarray(crop(chw)), expected)
        np.testing.assert_array_equal(np.asarray(crop(torch.from_numpy(chw))), expected)


def test_preprocess_rejects_bad_statistics():
    with pytest.raises(VfmError, match="mean and std"):
        fundus_preprocess(image_size=64, mean=[0.5], std=[0.25])


def test_random_resized_crop_samples_mae_boxes_reproducibly():
    crop = RandResizedCrop(32)
    image = torch.arange(3 * 64 * 64, dtype=torch.float32).reshape(3, 64, 64)
    for seed in range(50):
        crop.set_random_state(seed)
        out = crop(image)
        top, left, h, w = crop.box
        assert out.shape == (3, 32, 32)
        assert 0.2 * 64 * 64 * 0.9 <= h * w <= 64 * 64 and 0 <= top <= 64 - h and 0 <= left <= 64 - w
        assert 3 / 4 - 0.1 <= w / h <= 4 / 3 + 0.1
        crop.set_random_state(seed)
        assert torch.equal(crop(image), out)


def test_augmentation_of_an_image_depends_only_on_its_seed():
    images = torch.randn(4, 3, 32, 32)
    augment = mae_augment(32)
    full = augment_batch(augment, images, [11, 12, 13, 14])
    assert type(full) is torch.Tensor and full.shape == images.shape
    assert torch.equal(augment_batch(augment, images[2:], [13, 14]), full[2:])  # batch composition is irrelevant
    assert not torch.equal(augment_batch(augment, images, [21, 22, 23, 24]), full)
    flips = 0
    for seed in range(40):
        augment.set_random_state(seed)
        out = augment(images[0])
        cropped = augment.transforms[0](images[0], randomize=False)  # the same box, not flipped
        assert torch.equal(out, cropped) or torch.equal(out, cropped.flip(-1))
        flips += torch.equal(out, cropped.flip(-1))
    assert 10 <= flips <= 30  # horizontal flips with probability 1/2
