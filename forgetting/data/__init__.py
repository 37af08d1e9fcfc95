"""Datasets: every item is `(image, label, index)` so that records are exact under any sampler."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset


class IndexedTensorDataset(Dataset):
    """Images held in memory as one float tensor in [0, 1]; yields `(image, label, index)`."""

    def __init__(
        self,
        images: torch.Tensor,
        labels: np.ndarray,
        transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> None:
        self.images = images
        self.labels = torch.as_tensor(labels, dtype=torch.long)
        self.transform = transform

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

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def test_labels(self) -> np.ndarray:
        return np.asarray(self.test.labels)
