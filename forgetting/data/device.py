"""The device-resident data path: pixels moved to the device once, batches gathered by index.

Training views are augmented there, vectorised over the batch: a random resized crop and flip
(the file-backed datasets, whose decoded cache holds the eval-resolution images) or random shifts
(the digits). Batch `b` of an epoch draws from its own generator, seeded by the caller from
`(seed, epoch, b)`, so an epoch can start at any batch and draw what an uninterrupted one would.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from forgetting.data import BatchAugment, DatasetError, InMemory

log = logging.getLogger(__name__)
MEMORY_FRACTION = 0.5  # of the free device memory (CUDA) or available host memory (CPU)
Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


@dataclass(frozen=True)
class Boxes:
    """Per-image crop boxes (top, left, height, width; integer-valued) and horizontal flips."""

    top: torch.Tensor
    left: torch.Tensor
    height: torch.Tensor
    width: torch.Tensor
    flip: torch.Tensor


def crop_boxes(
    n: int, height: int, width: int, scale: Sequence[float], ratio: Sequence[float],
    generator: torch.Generator, attempts: int = 10,
) -> Boxes:
    """torchvision's `RandomResizedCrop.get_params` for `n` images at once, plus a fair coin each
    for the flip: `attempts` draws of area fraction and log-uniform aspect ratio, the first that
    fits, else the centre crop at the ratio clamped to `ratio`."""
    device = generator.device
    draws = torch.rand(n, attempts, 2, generator=generator, device=device, dtype=torch.float64)
    area = height * width * (scale[0] + (scale[1] - scale[0]) * draws[..., 0])
    log_low, log_high = math.log(ratio[0]), math.log(ratio[1])
    aspect = torch.exp(log_low + (log_high - log_low) * draws[..., 1])
    w, h = torch.round(torch.sqrt(area * aspect)), torch.round(torch.sqrt(area / aspect))
    fits = (w > 0) & (w <= width) & (h > 0) & (h <= height)
    first = fits.to(torch.int8).argmax(1, keepdim=True)
    found = fits.any(1)
    fallback_h, fallback_w = _centre_crop_size(height, width, ratio)
    h = torch.where(found, h.gather(1, first).squeeze(1), float(fallback_h))
    w = torch.where(found, w.gather(1, first).squeeze(1), float(fallback_w))
    place = torch.rand(n, 3, generator=generator, device=device, dtype=torch.float64)
    top = torch.where(found, torch.floor(place[:, 0] * (height - h + 1)), (height - h) // 2)
    left = torch.where(found, torch.floor(place[:, 1] * (width - w + 1)), (width - w) // 2)
    return Boxes(top, left, h, w, place[:, 2] < 0.5)


def _centre_crop_size(height: int, width: int, ratio: Sequence[float]) -> tuple[int, int]:
    """The whole image, cut to the nearest allowed aspect ratio (torchvision's fallback)."""
    if width / height < min(ratio):
        return int(round(width / min(ratio))), width
    if width / height > max(ratio):
        return height, int(round(height * max(ratio)))
    return height, width


def _bilinear(x: torch.Tensor) -> torch.Tensor:
    return (1.0 - x.abs()).clamp_(min=0.0)


def _bicubic(x: torch.Tensor, a: float = -0.5) -> torch.Tensor:
    """Keys' cubic convolution with a = -0.5, as in PyTorch's antialiased bicubic."""
    x = x.abs()
    near = ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
    far = ((a * x - 5.0 * a) * x + 8.0 * a) * x - 4.0 * a
    return torch.where(x < 1.0, near, torch.where(x < 2.0, far, torch.zeros_like(x)))


FILTERS: dict[str, tuple[Callable[[torch.Tensor], torch.Tensor], float]] = {
    "bilinear": (_bilinear, 1.0), "bicubic": (_bicubic, 2.0)}


def resize_weights(start: torch.Tensor, length: torch.Tensor, size: int, in_size: int,
                   interpolation: str) -> torch.Tensor:
    """(n, size, in_size) rows that resample the span [start, start + length) of an axis of
    `in_size` pixels to `size` pixels, as `F.interpolate(..., antialias=True)` does the crop."""
    if interpolation not in FILTERS:
        raise ValueError(f"interpolation {interpolation!r} has no batched resize; "
                         f"choose from {sorted(FILTERS)}")
    kernel, _ = FILTERS[interpolation]
    device = start.device
    scale = (length / size)[:, None, None]
    centre = start[:, None, None] + scale * (torch.arange(size, device=device,
                                                          dtype=torch.float64)[None, :, None] + 0.5)
    pixel = torch.arange(in_size, device=device, dtype=torch.float64)[None, None, :]
    weights = kernel((pixel + 0.5 - centre) / scale.clamp(min=1.0))
    inside = (pixel >= start[:, None, None]) & (pixel < (start + length)[:, None, None])
    weights = weights * inside
    return (weights / weights.sum(-1, keepdim=True)).float()


def resized_crops(images: torch.Tensor, boxes: Boxes, size: int,
                  interpolation: str = "bilinear") -> torch.Tensor:
    """Each image's box resized to `size` x `size` (antialiased) and flipped where `boxes.flip`:
    two batched matrix products, (n, C, H, W) float -> (n, C, size, size)."""
    _, _, height, width = images.shape
    rows = resize_weights(boxes.top, boxes.height, size, height, interpolation)
    cols = resize_weights(boxes.left, boxes.width, size, width, interpolation)
    cols = torch.where(boxes.flip[:, None, None], cols.flip(1), cols)
    return rows[:, None] @ images @ cols.transpose(1, 2)[:, None]


def to_unit(images: torch.Tensor) -> torch.Tensor:
    """uint8 0..255 -> float [0, 1]; float images pass unchanged."""
    return images.float().div_(255.0) if images.dtype == torch.uint8 else images.float()


@dataclass(frozen=True)
class RandomResizedCropFlip:
    """A random resized crop (area fraction in `scale`, aspect ratio in `ratio`) to `size` and a
    horizontal flip with probability 1/2, of a batch: timm's training view, on the device."""

    size: int
    scale: tuple[float, float] = (0.08, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    interpolation: str = "bilinear"

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        n, _, height, width = images.shape
        boxes = crop_boxes(n, height, width, self.scale, self.ratio, generator)
        return resized_crops(to_unit(images), boxes, self.size, self.interpolation)


@dataclass(frozen=True)
class RandomShift:
    """torchvision's `RandomCrop(size, padding)` of a batch (zero padding, same size out): each
    image shifted by up to `padding` pixels in each direction."""

    padding: int

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        n, _, height, width = images.shape
        pad = self.padding
        offsets = torch.randint(0, 2 * pad + 1, (n, 2), generator=generator,
                                device=generator.device).to(images.device)
        padded = F.pad(images, (pad, pad, pad, pad)).permute(0, 2, 3, 1)
        rows = offsets[:, 0, None] + torch.arange(height, device=images.device)
        cols = offsets[:, 1, None] + torch.arange(width, device=images.device)
        batch = torch.arange(n, device=images.device)[:, None, None]
        return padded[batch, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2).contiguous()


class DeviceSplit:
    """A split resident on the device: its images, labels and the training view's augmentation."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor,
                 augment: BatchAugment | None = None) -> None:
        self.images, self.labels, self.augment = images, labels.to(images.device), augment

    def __len__(self) -> int:
        return len(self.labels)

    def batches(self, batch_list: Sequence[Sequence[int]], seed_of: Callable[[int], int],
                start_batch: int = 0) -> Iterator[Batch]:
        """`(images, labels, index)` of batches `start_batch`, ... of `batch_list`, all on the
        device; batch b is augmented from a generator seeded with `seed_of(b)`."""
        device = self.images.device
        todo = batch_list[start_batch:]
        if not todo:
            return
        order = torch.as_tensor([i for batch in todo for i in batch], dtype=torch.long)
        chunks = order.to(device, non_blocking=True).split([len(batch) for batch in todo])
        for b, index in enumerate(chunks, start=start_batch):
            images = self.images[index]
            if self.augment is not None:
                generator = torch.Generator(device=device).manual_seed(seed_of(b))
                images = self.augment(images, generator)
            yield images, self.labels[index], index


def memory_budget(device: torch.device) -> int:
    """Bytes the device path may hold: a fraction of the free CUDA memory or available RAM."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free * MEMORY_FRACTION)
    return int(_available_ram() * MEMORY_FRACTION)


def _available_ram() -> int:
    meminfo = Path("/proc/meminfo")
    if meminfo.is_file():
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def resident_splits(sources: Mapping[str, InMemory | None], device: torch.device,
                    mode: str) -> dict[str, DeviceSplit] | None:
    """The splits moved to `device` (`mode` "true"; "auto" when all are in memory and fit the
    budget), or None for the DataLoader path ("false", or "auto" when they do not)."""
    if mode == "false":
        return None
    missing = sorted(name for name, source in sources.items() if source is None)
    if missing:
        if mode == "true":
            raise DatasetError(f"dataset.device_cache=true, but the {', '.join(missing)} images "
                               "are not in memory: pass dataset.cache=true to decode them once")
        log.info("device data path off: %s not decoded in memory (dataset.cache=false)", missing)
        return None
    unique = {source.key: source for source in sources.values()}
    need, budget = sum(s.nbytes for s in unique.values()), memory_budget(device)
    if mode == "auto" and need > budget:
        log.info("device data path off: %.2f GB of images exceed the %.2f GB budget on %s",
                 need / 1e9, budget / 1e9, device)
        return None
    images = {key: source.load().to(device) for key, source in unique.items()}
    return {name: DeviceSplit(images[s.key], s.labels, s.augment) for name, s in sources.items()}
