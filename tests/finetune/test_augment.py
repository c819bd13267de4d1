"""Batch augmentation: flip + crop, RandAugment in pixel space, mixup/cutmix soft targets."""

import pytest
import torch

from vfm.finetune.augment import BatchAugment, augment_batch, rand_augment

MEAN, STD = [0.5, 0.4, 0.3], [0.25, 0.2, 0.3]


def normalised(n: int, seed: int = 0) -> torch.Tensor:
    """[n, 3, 16, 16] images of pixels in [0, 1], normalised with MEAN/STD."""
    pixels = torch.rand(n, 3, 16, 16, generator=torch.Generator().manual_seed(seed))
    return (pixels - torch.tensor(MEAN)[:, None, None]) / torch.tensor(STD)[:, None, None]


def test_augment_flips_and_crops_per_image():
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).reshape(2, 3, 8, 8)
    torch.manual_seed(0)
    out = augment_batch(x, min_area=1.0)  # no crop: each image is itself or its mirror
    for i in range(2):
        assert torch.allclose(out[i], x[i], atol=1e-4) or torch.allclose(out[i], x[i].flip(-1), atol=1e-4)
    assert augment_batch(x).shape == x.shape


def test_rand_augment_round_trips_the_normalisation_and_varies_per_image():
    x = normalised(6)
    torch.testing.assert_close(rand_augment(x, mean=MEAN, std=STD, num_ops=0), x, atol=1e-5, rtol=0)
    torch.manual_seed(0)
    same = normalised(1).expand(6, -1, -1, -1)
    out = rand_augment(same, mean=MEAN, std=STD, num_ops=2, magnitude=9)
    assert out.shape == same.shape and out.dtype == same.dtype
    pixels = out * torch.tensor(STD)[:, None, None] + torch.tensor(MEAN)[:, None, None]
    assert pixels.min() >= -1e-5 and pixels.max() <= 1 + 1e-5  # stays a valid image
    assert len({tuple(image.flatten()[:50].tolist()) for image in out}) > 1  # ops drawn per image


@pytest.mark.parametrize("mixup, cutmix", [(0.8, 0.0), (0.0, 1.0), (0.8, 1.0)])
def test_mixing_gives_soft_targets_with_label_smoothing(mixup, cutmix):
    torch.manual_seed(0)
    augment = BatchAugment(4, crop_flip=False, mixup=mixup, cutmix=cutmix, label_smoothing=0.1)
    assert augment.soft_targets
    x, y = normalised(5), torch.tensor([0, 1, 2, 3, 1])
    out, target = augment(x.clone(), y)
    assert out.shape == x.shape and target.shape == (5, 4)
    torch.testing.assert_close(target.sum(dim=1), torch.ones(5))
    assert target.min() >= 0.1 / 4 - 1e-6  # smoothing floor of every class
    # an odd last sample is left unmixed, with a smoothed one-hot target
    torch.testing.assert_close(out[4], x[4])
    torch.testing.assert_close(target[4], torch.tensor([0.025, 0.925, 0.025, 0.025]))


def test_without_mixing_labels_stay_integers():
    augment = BatchAugment(3, crop_flip=True, rand_augment=True, mean=MEAN, std=STD)
    x, y = normalised(4), torch.tensor([0, 1, 2, 0])
    out, target = augment(x, y)
    assert not augment.soft_targets and target is y and out.shape == x.shape
    plain_x, plain_y = BatchAugment(3, crop_flip=False)(x, y)
    assert plain_x is x and plain_y is y
