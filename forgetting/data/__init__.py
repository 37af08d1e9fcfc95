"""Datasets: every item is `(image, label, index)` so that records are exact under any sampler.

Images are CHW tensors, either uint8 (0..255, the file-backed datasets) or float in [0, 1] (digits);
the trainer scales and normalises them on its device with the arch's mean and std.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset


class DatasetError(ValueError):
    """A dataset on disk is missing or inconsistent; the message names what, where, and the fix."""


class CorruptImageError(DatasetError):
    """An image file cannot be decoded; the message names the file."""


BatchAugment = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


@dataclass(frozen=True)
class InMemory:
    """A split's pixels as one host tensor, for the trainer's device-resident data path.

    `load()` gives (N, C, H, W) uint8 or float [0, 1] images; splits with equal `key` share one
    copy on the device; `augment(images, generator)` is the training view's augmentation, batched.
    """

    key: Hashable
    nbytes: int
    load: Callable[[], torch.Tensor]
    labels: torch.Tensor
    augment: BatchAugment | None = None


class IndexedTensorDataset(Dataset):
    """Images held in memory as one float [0, 1] or uint8 tensor; yields `(image, label, index)`.

    `transform` augments one image (DataLoader path); `batch_augment` is the same augmentation
    for a batch on the device (device path).
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: np.ndarray,
        transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
        batch_augment: BatchAugment | None = None,
    ) -> None:
        self.images = images
        self.labels = torch.as_tensor(labels, dtype=torch.long)
        self.transform = transform
        self.batch_augment = batch_augment

    def in_memory(self) -> InMemory:
        """The images as they are (already in memory), shared with any split of the same tensor."""
        return InMemory(key=("tensor", id(self.images)), nbytes=self.images.nbytes,
                        load=lambda: self.images, labels=self.labels, augment=self.batch_augment)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        image = self.images[index]
        if self.transform is not None:
            image = self.transform(image)
        return image, self.labels[index], index


@dataclass
class DataBundle:
    """The splits of one dataset plus what the record needs to know about the training split."""

    name: str
    train: Dataset
    train_eval: Dataset
    test: Dataset
    sample_keys: np.ndarray
    labels: np.ndarray
    class_names: list[str]
    split: dict[str, Any] = field(default_factory=dict)
    val: Dataset | None = None
    excluded: list[dict[str, str]] = field(default_factory=list)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def test_labels(self) -> np.ndarray:
        return np.asarray(self.test.labels)

    @property
    def val_labels(self) -> np.ndarray | None:
        return None if self.val is None else np.asarray(self.val.labels)
