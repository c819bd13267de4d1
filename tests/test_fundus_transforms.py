"""MONAI fundus transforms: the same pixels as the numpy serving preprocessing; seedable MAE augmentation."""

import numpy as np
import pytest
import torch

from vfm.platform.errors import VfmError
from vfm.plugins.retina.preprocess import crop_to_field_of_view, preprocess
from vfm.plugins.retina.synthetic import generate
from vfm.pretrain.fundus_transforms import (CropFieldOfView, RandResizedCrop, augment_batch, fundus_preprocess,
                                            mae_augment)

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
