"""The device data path: batched crops equal torchvision's per image, batches are a function of
their position, splits share one device copy and fall back to the DataLoader when asked."""

import math

import numpy as np
import pytest
import torch
from torchvision.transforms import RandomResizedCrop
from torchvision.transforms.v2 import functional as TF

from forgetting.data import DatasetError, InMemory
from forgetting.data import device as device_module
from forgetting.data.device import (
    DeviceSplit,
    RandomResizedCropFlip,
    RandomShift,
    crop_boxes,
    resident_splits,
    resized_crops,
)

MODES = {"bilinear": TF.InterpolationMode.BILINEAR, "bicubic": TF.InterpolationMode.BICUBIC}


@pytest.mark.parametrize("interpolation", ["bilinear", "bicubic"])
@pytest.mark.parametrize("size", [9, 40])  # mostly downsampling, upsampling
def test_batched_crops_equal_torchvision_resized_crop(interpolation: str, size: int) -> None:
    gen = torch.Generator().manual_seed(size)
    images = torch.rand(12, 3, 20, 28, generator=gen)
    boxes = crop_boxes(12, 20, 28, (0.05, 1.0), (0.5, 2.0), gen)
    crops = resized_crops(images, boxes, size, interpolation)
    assert crops.shape == (12, 3, size, size) and boxes.flip.any() and not boxes.flip.all()
    for i in range(12):
        box = [int(v[i]) for v in (boxes.top, boxes.left, boxes.height, boxes.width)]
        expected = TF.resized_crop(images[i], *box, [size, size],
                                   interpolation=MODES[interpolation], antialias=True)
        if boxes.flip[i]:
            expected = TF.horizontal_flip(expected)
        torch.testing.assert_close(crops[i], expected, atol=1e-5, rtol=0)


def test_crop_boxes_follow_torchvision_rules() -> None:
    gen = torch.Generator().manual_seed(0)
    boxes = crop_boxes(4000, 30, 40, (0.2, 0.9), (3 / 4, 4 / 3), gen)
    h, w = boxes.height.numpy(), boxes.width.numpy()
    top, left = boxes.top.numpy(), boxes.left.numpy()
    assert (top >= 0).all() and (left >= 0).all()
    assert (top + h <= 30).all() and (left + w <= 40).all()
    area, log_ratio = h * w / 1200, np.log(w / h)
    assert 0.2 * 0.8 < area.min() < 0.25 and 0.85 < area.max() < 0.9 * 1.2  # rounding to pixels
    assert math.log(3 / 4) - 0.1 < log_ratio.min() and log_ratio.max() < math.log(4 / 3) + 0.1
    assert abs(boxes.flip.float().mean().item() - 0.5) < 0.05


def test_a_crop_that_never_fits_falls_back_to_torchvision_centre_crop() -> None:
    gen = torch.Generator().manual_seed(0)
    boxes = crop_boxes(3, 4, 40, (0.9, 1.0), (1.0, 1.0), gen)
    expected = RandomResizedCrop.get_params(torch.zeros(3, 4, 40), [0.9, 1.0], [1.0, 1.0])
    for i in range(3):
        got = tuple(int(v[i]) for v in (boxes.top, boxes.left, boxes.height, boxes.width))
        assert got == expected


def test_random_shift_equals_a_padded_crop_per_image() -> None:
    images = torch.randint(0, 256, (7, 3, 8, 8), dtype=torch.uint8)
    out = RandomShift(2)(images, torch.Generator().manual_seed(3))
    offsets = torch.randint(0, 5, (7, 2), generator=torch.Generator().manual_seed(3))
    assert out.dtype == torch.uint8 and out.is_contiguous()
    for i in range(7):
        expected = TF.crop(TF.pad(images[i], [2]), int(offsets[i, 0]), int(offsets[i, 1]), 8, 8)
        assert torch.equal(out[i], expected)


def test_random_resized_crop_flip_scales_uint8_to_unit_floats() -> None:
    images = torch.full((2, 3, 10, 10), 255, dtype=torch.uint8)
    out = RandomResizedCropFlip(6, interpolation="bilinear")(images, torch.Generator())
    assert out.dtype == torch.float32 and out.shape == (2, 3, 6, 6)
    torch.testing.assert_close(out, torch.ones_like(out))


def split(n: int = 20) -> DeviceSplit:
    images = torch.arange(n * 3 * 6 * 6, dtype=torch.float32).reshape(n, 3, 6, 6) / (n * 108)
    return DeviceSplit(images, torch.arange(n) % 4, RandomResizedCropFlip(5, (0.3, 1.0)))


def test_a_batch_depends_only_on_its_position_and_seed() -> None:
    data = split()
    batch_list = [[3, 1, 4], [15, 9, 2], [6, 5, 3], [5, 8, 9, 7]]
    full = list(data.batches(batch_list, lambda b: 100 + b))
    later = list(data.batches(batch_list, lambda b: 100 + b, start_batch=2))
    assert len(later) == 2
    for (x, y, idx), (x2, y2, idx2) in zip(full[2:], later, strict=True):
        assert torch.equal(x, x2) and torch.equal(y, y2) and torch.equal(idx, idx2)
    assert full[3][2].tolist() == [5, 8, 9, 7] and full[3][1].tolist() == [1, 0, 1, 3]
    other = list(data.batches(batch_list, lambda b: 200 + b))
    assert not torch.equal(full[0][0], other[0][0])
    assert list(data.batches(batch_list, lambda b: b, start_batch=4)) == []


def source(images: torch.Tensor, key: str) -> InMemory:
    return InMemory(key=key, nbytes=images.nbytes, load=lambda: images,
                    labels=torch.zeros(len(images), dtype=torch.long))


def test_splits_of_one_tensor_share_one_device_copy(monkeypatch: pytest.MonkeyPatch) -> None:
    images = torch.rand(10, 3, 4, 4)
    sources = {"train": source(images, "a"), "train_eval": source(images, "a"),
               "test": source(torch.rand(5, 3, 4, 4), "b")}
    cpu = torch.device("cpu")
    splits = resident_splits(sources, cpu, "auto")
    assert splits["train"].images is splits["train_eval"].images
    assert resident_splits(sources, cpu, "false") is None
    monkeypatch.setattr(device_module, "memory_budget", lambda device: images.nbytes)
    assert resident_splits(sources, cpu, "auto") is None  # 10 + 5 images do not fit
    assert resident_splits(sources, cpu, "true") is not None
    with pytest.raises(DatasetError, match="dataset.cache=true"):
        resident_splits({**sources, "test": None}, cpu, "true")
    assert resident_splits({**sources, "test": None}, cpu, "auto") is None
