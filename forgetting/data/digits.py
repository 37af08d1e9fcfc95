"""scikit-learn's bundled handwritten digits (real 8x8 scans, no download), upscaled to RGB."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits as sklearn_digits
from sklearn.model_selection import train_test_split
from torchvision.transforms import v2

from forgetting.data import DataBundle, IndexedTensorDataset
from forgetting.data.cache import decode_all, default_cache_dir
from forgetting.data.device import RandomShift


def load_digits(
    image_size: int = 32, test_fraction: float = 0.2, split_seed: int = 0, augment: bool = True,
    cache: bool = False, cache_dir: str | None = None, cache_in_memory: bool = False,
    name: str = "digits", data_config: Mapping[str, Any] | None = None,
) -> DataBundle:
    """Stratified train/test split fixed by `split_seed`; keys `digits/<sklearn index>`.

    The digits keep their own pipeline (8x8 upscaled, random shifts), so the arch's
    `data_config` is not used. `cache=true` stores the upscaled images as uint8 in the decoded
    cache (`forgetting.data.cache`), like the file-backed datasets; there is no decoding to save.
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"dataset.test_fraction={test_fraction} must lie in (0, 1)")
    bunch = sklearn_digits()
    labels = bunch.target.astype(np.int64)
    train_idx, test_idx = train_test_split(
        np.arange(len(labels)), test_size=test_fraction, stratify=labels, random_state=split_seed
    )
    train_idx, test_idx = np.sort(train_idx), np.sort(test_idx)
    images = _upscale(bunch.images, image_size)
    if cache:
        images = _cached(images, None if cache_in_memory else Path(
            cache_dir).expanduser() if cache_dir else default_cache_dir())
    padding = max(1, image_size // 16)
    shift = v2.RandomCrop(image_size, padding=padding) if augment else None
    train_images = images[train_idx]
    return DataBundle(
        name=name,
        train=IndexedTensorDataset(train_images, labels[train_idx], transform=shift,
                                   batch_augment=RandomShift(padding) if augment else None),
        train_eval=IndexedTensorDataset(train_images, labels[train_idx]),
        test=IndexedTensorDataset(images[test_idx], labels[test_idx]),
        sample_keys=np.array([f"digits/{i:04d}" for i in train_idx]),
        labels=labels[train_idx],
        class_names=[str(c) for c in bunch.target_names],
        split={"split_seed": split_seed, "test_fraction": test_fraction,
               "n_train": len(train_idx), "n_test": len(test_idx)},
    )


def _upscale(images: np.ndarray, size: int) -> torch.Tensor:
    """(N, 8, 8) intensities 0..16 -> (N, 3, size, size) floats in [0, 1]."""
    x = torch.from_numpy(images.astype(np.float32) / 16.0)[:, None]
    x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    return x.clamp_(0.0, 1.0).expand(-1, 3, -1, -1).contiguous()


def _cached(images: torch.Tensor, cache_root: Path | None) -> torch.Tensor:
    """The images as uint8 (N, 3, H, W), through the decoded cache (a file under `cache_root`)."""
    n, _, h, w = images.shape
    pixels = (images * 255).round_().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    file = None if cache_root is None else cache_root / "digits" / f"all-{h}px.npy"
    decoded = decode_all(pixels.__getitem__, n, (h, w, 3), skip_failed=False, file=file,
                         desc="cache digits")
    return torch.from_numpy(np.array(decoded.array)).permute(0, 3, 1, 2)
