"""Datasets read from image files: decoding with clear errors, the decoded cache, corrupt files.

The dataset modules (cub200, octdl, imagefolder) only read their layout and choose splits; this
module turns pools of files plus splits into a DataBundle. A pool is a set of files decoded and
cached together (CUB's official train or test images, all of OCTDL, one image-folder tree); a
split is a pool plus the positions, labels and keys of its samples.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from forgetting.console import progress
from forgetting.data import CorruptImageError, DataBundle, InMemory
from forgetting.data.cache import DecodedImages, decode_all, default_cache_dir
from forgetting.data.device import FILTERS, RandomResizedCropFlip
from forgetting.data.transforms import PixelConfig, eval_transform, train_transform

SKIP_HINT = ("Replace the file, or pass dataset.skip_corrupt=true to leave it out (the run's "
             "dynamics/meta.json then lists it under `excluded`).")


@dataclass(frozen=True)
class ImageOptions:
    """The pixel pipeline and caching options every file-backed dataset takes (`dataset.<key>`)."""

    image_size: int = 224
    data_config: Mapping[str, Any] | None = None
    augment: bool = True
    scale: Sequence[float] = (0.08, 1.0)
    cache: bool = False
    cache_dir: str | None = None
    cache_in_memory: bool = False
    skip_corrupt: bool = False


@dataclass(frozen=True)
class ImageFiles:
    """The image files of one pool: paths relative to `root`, optional boxes (x, y, w, h)."""

    root: Path
    paths: np.ndarray
    boxes: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.paths)

    def path(self, position: int) -> Path:
        return self.root / str(self.paths[position])

    def open(self, position: int) -> Image.Image:
        """The image at `position` as RGB, cropped to its box; CorruptImageError naming the file."""
        path = self.path(position)
        try:
            with Image.open(path) as image:
                rgb = image.convert("RGB")
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
            raise CorruptImageError(
                f"cannot decode the image {path} ({type(exc).__name__}: {exc}). {SKIP_HINT}"
            ) from exc
        if self.boxes is None:
            return rgb
        x, y, w, h = self.boxes[position]
        left, top = max(0, int(np.floor(x))), max(0, int(np.floor(y)))
        right = min(rgb.width, max(left + 1, int(np.ceil(x + w))))
        bottom = min(rgb.height, max(top + 1, int(np.ceil(y + h))))
        return rgb.crop((left, top, right, bottom))

    def fingerprint(self) -> str:
        """A digest of the root, the file list, each file's size and mtime, and the boxes."""
        stats = [os.stat(self.path(i)) for i in range(len(self))]
        digest = hashlib.sha1(json.dumps([
            str(self.root.resolve()), [str(p) for p in self.paths],
            [s.st_size for s in stats], [s.st_mtime_ns for s in stats],
        ]).encode())
        if self.boxes is not None:
            digest.update(np.ascontiguousarray(self.boxes, np.float64).tobytes())
        return digest.hexdigest()


class ImagePool:
    """A pool's images as uint8 CHW model inputs, decoded on demand or read from the cache."""

    def __init__(self, files: ImageFiles, pixels: PixelConfig,
                 decoded: DecodedImages | None = None) -> None:
        self.files, self.pixels, self.decoded = files, pixels, decoded
        self.eval_transform = eval_transform(pixels)
        self.train_transform = train_transform(pixels)
        self.batch_augment = RandomResizedCropFlip(
            pixels.image_size, pixels.scale, pixels.ratio, pixels.interpolation,
        ) if pixels.augment and pixels.interpolation in FILTERS else None

    def decode_eval(self, position: int) -> np.ndarray:
        """The eval-resolution image as (H, W, 3) uint8: what the cache stores."""
        return self.eval_transform(self.files.open(position)).permute(1, 2, 0).numpy()

    def eval_image(self, position: int) -> torch.Tensor:
        if self.decoded is None:
            return self.eval_transform(self.files.open(position))
        return torch.from_numpy(np.array(self.decoded[position])).permute(2, 0, 1).contiguous()

    def train_image(self, position: int) -> torch.Tensor:
        """A random resized crop and flip of the original image (of the cached eval-resolution
        image with `dataset.cache=true`)."""
        if not self.pixels.augment:
            return self.eval_image(position)
        if self.decoded is None:
            return self.train_transform(self.files.open(position))
        return self.train_transform(Image.fromarray(np.asarray(self.decoded[position])))


class ImageDataset(Dataset):
    """Samples of a pool at `positions`; yields `(uint8 image, label, index)`."""

    def __init__(self, pool: ImagePool, positions: np.ndarray, labels: np.ndarray,
                 train: bool) -> None:
        self.pool, self.positions, self.train = pool, np.asarray(positions), train
        self.labels = np.asarray(labels, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, int]:
        position = int(self.positions[index])
        image = self.pool.train_image(position) if self.train else self.pool.eval_image(position)
        return image, int(self.labels[index]), index

    def in_memory(self) -> InMemory | None:
        """The decoded cache's eval-resolution pixels of these samples, the training view cropped
        and flipped on the device; None without the cache or a batched crop (interpolation)."""
        decoded = self.pool.decoded
        augment = self.pool.batch_augment if self.train else None
        if decoded is None or (self.train and self.pool.pixels.augment and augment is None):
            return None
        size = self.pool.pixels.image_size

        def load() -> torch.Tensor:
            pixels = np.ascontiguousarray(decoded.array[self.positions])
            return torch.from_numpy(pixels).permute(0, 3, 1, 2).contiguous()

        return InMemory(key=(id(self.pool), self.positions.tobytes()),
                        nbytes=len(self.positions) * 3 * size * size, load=load,
                        labels=torch.as_tensor(self.labels),
                        augment=augment)


@dataclass(frozen=True)
class Split:
    """The samples of one split: positions in a pool, labels and stable keys, in record order."""

    pool: str
    positions: np.ndarray
    labels: np.ndarray
    keys: np.ndarray

    def take(self, mask: np.ndarray) -> Split:
        return Split(self.pool, self.positions[mask], self.labels[mask], self.keys[mask])


def assemble(
    name: str, pools: dict[str, ImageFiles], splits: dict[str, Split], class_names: list[str],
    options: ImageOptions, info: dict[str, Any],
) -> DataBundle:
    """The DataBundle of `splits` (`train`, `test`, optional `val`): pixel pipeline at the arch's
    resolution, decoded cache, and corrupt images refused or left out and listed."""
    pixels = PixelConfig.resolve(options.image_size, options.data_config, options.augment,
                                 options.scale)
    image_pools, failed = {}, {}
    for pool_name, files in pools.items():
        pool = ImagePool(files, pixels)
        if options.cache:
            pool.decoded = _decode(name, pool_name, pool, options)
            failed[pool_name] = pool.decoded.failed
        else:
            failed[pool_name] = _scan(files) if options.skip_corrupt else {}
        if failed[pool_name] and not options.skip_corrupt:
            first = min(failed[pool_name])
            raise CorruptImageError(failed[pool_name][first])
        image_pools[pool_name] = pool
    excluded: list[dict[str, str]] = []
    kept: dict[str, Split] = {}
    for split_name, split in splits.items():
        bad = np.isin(split.positions, np.fromiter(failed[split.pool], np.int64))
        excluded += [
            {"split": split_name, "key": str(key),
             "file": str(pools[split.pool].path(int(pos))), "error": failed[split.pool][int(pos)]}
            for key, pos in zip(split.keys[bad], split.positions[bad], strict=True)
        ]
        kept[split_name] = split.take(~bad)

    def dataset(split_name: str, train: bool = False) -> ImageDataset:
        split = kept[split_name]
        return ImageDataset(image_pools[split.pool], split.positions, split.labels, train)

    counts = {s: np.bincount(split.labels, minlength=len(class_names)).tolist()
              for s, split in kept.items()}
    return DataBundle(
        name=name, train=dataset("train", train=True), train_eval=dataset("train"),
        test=dataset("test"), val=dataset("val") if "val" in kept else None,
        sample_keys=kept["train"].keys, labels=kept["train"].labels, class_names=class_names,
        split={**info, **{f"n_{s}": len(split.labels) for s, split in kept.items()},
               "class_counts": counts, "n_excluded": len(excluded),
               "pixels": {**asdict(pixels), "scale": list(pixels.scale)}},
        excluded=excluded,
    )


def _decode(name: str, pool_name: str, pool: ImagePool, options: ImageOptions) -> DecodedImages:
    size = pool.pixels.image_size
    file = None
    if not options.cache_in_memory:
        key = hashlib.sha1(f"{pool.files.fingerprint()}-{pool.pixels.eval_key()}".encode())
        root = Path(options.cache_dir).expanduser() if options.cache_dir else default_cache_dir()
        file = root / name / f"{pool_name}-{size}px-{key.hexdigest()[:16]}.npy"
    return decode_all(pool.decode_eval, len(pool.files), (size, size, 3),
                      skip_failed=options.skip_corrupt, file=file, desc=f"cache {name}/{pool_name}")


def _scan(files: ImageFiles) -> dict[int, str]:
    """Decode every file once (threads) and return the failures: position -> message."""

    def check(position: int) -> str | None:
        try:
            files.open(position).close()
        except CorruptImageError as exc:
            return str(exc)
        return None

    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        results = list(progress(pool.map(check, range(len(files))), total=len(files),
                                desc="check images", leave=False))
    return {i: error for i, error in enumerate(results) if error is not None}
