import random

import numpy as np
import timm
import torch
from PIL import Image

from forgetting.data.transforms import PixelConfig, eval_transform, train_transform
from forgetting.models import data_config


def test_pixels_take_the_arch_interpolation_and_crop_at_the_dataset_size() -> None:
    pixels = PixelConfig.resolve(64, data_config("resnet18.a1_in1k"), scale=[0.5, 1.0])
    assert (pixels.image_size, pixels.interpolation, pixels.crop_pct) == (64, "bicubic", 0.95)
    assert pixels.scale == (0.5, 1.0)
    assert PixelConfig.resolve(32).crop_pct == timm.data.DEFAULT_CROP_PCT


def test_pipelines_end_in_uint8_chw_without_normalisation() -> None:
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (30, 50, 3), np.uint8))
    pixels = PixelConfig.resolve(16, data_config("test_resnet"))
    for transform in (eval_transform(pixels), train_transform(pixels)):
        x = transform(image)
        assert x.dtype == torch.uint8 and x.shape == (3, 16, 16)
    assert "Normalize" not in repr(train_transform(pixels))
    assert "ColorJitter" not in repr(train_transform(pixels))


def test_training_view_is_random_but_reproducible_from_the_seeds() -> None:
    image = Image.fromarray(np.random.default_rng(1).integers(0, 256, (40, 40, 3), np.uint8))
    transform = train_transform(PixelConfig.resolve(16))

    def draw(seed: int) -> list[torch.Tensor]:
        random.seed(seed)
        torch.manual_seed(seed)
        return [transform(image) for _ in range(4)]

    a, b = draw(0), draw(0)
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert any(not torch.equal(a[0], x) for x in a[1:])
    plain = PixelConfig.resolve(16, augment=False)
    assert torch.equal(train_transform(plain)(image), eval_transform(plain)(image))
