"""The decoded-image cache: every image of a pool decoded once into one uint8 array.

An array of shape (N, H, W, 3) at the eval resolution lives in memory or as a memory-mapped
`.npy` file under the cache dir (`dataset.cache_dir`, default `$XDG_CACHE_HOME/forgetting` or
`~/.cache/forgetting`), named `<dataset>/<pool>-<size>px-<fingerprint>.npy`: the fingerprint covers
the file list, sizes, modification times and the pixel pipeline, so a changed dataset or arch
pipeline gets a new file. Files are written to a temporary name and renamed when complete; a
sidecar `.json` lists the images that failed to decode.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from forgetting.checkpoint import atomic_write
from forgetting.console import progress
from forgetting.data import CorruptImageError

Decode = Callable[[int], np.ndarray]


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "forgetting"


class DecodedImages:
    """(N, H, W, 3) uint8 images in memory or memory-mapped; `failed` maps position -> error.

    Pickles by path (a data-loader worker re-opens the memory map instead of copying it).
    """

    def __init__(self, array: np.ndarray | None, path: Path | None,
                 failed: dict[int, str]) -> None:
        self._array, self.path, self.failed = array, path, failed

    @property
    def array(self) -> np.ndarray:
        if self._array is None:
            self._array = np.load(self.path, mmap_mode="r")
        return self._array

    def __len__(self) -> int:
        return len(self.array)

    def __getitem__(self, position: int) -> np.ndarray:
        return self.array[position]

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        if self.path is not None:
            state["_array"] = None
        return state


def decode_all(
    decode: Decode, n: int, shape: tuple[int, int, int], *, skip_failed: bool,
    file: Path | None = None, desc: str = "decode",
) -> DecodedImages:
    """Decode positions 0..n-1 into one array (in memory, or the `.npy` file `file`, reused when
    complete). A CorruptImageError is raised, or with `skip_failed` recorded in `failed`."""
    if file is not None and file.is_file() and _sidecar(file).is_file():
        cached = _open(file, n, shape)
        if cached is not None:
            return cached
    tmp = None if file is None else file.with_name(f".{file.stem}.tmp-{os.getpid()}.npy")
    if tmp is None:
        array = np.zeros((n, *shape), np.uint8)
    else:
        tmp.parent.mkdir(parents=True, exist_ok=True)
        array = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(n, *shape))
    failed: dict[int, str] = {}

    def one(i: int) -> tuple[int, np.ndarray | None, str | None]:
        try:
            return i, decode(i), None
        except CorruptImageError as exc:
            if not skip_failed:
                raise
            return i, None, str(exc)

    pool = ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1))
    try:
        for i, image, error in progress(pool.map(one, range(n)), desc=desc, total=n, leave=False):
            if error is not None:
                failed[i] = error
            else:
                array[i] = image
        if tmp is None:
            return DecodedImages(array, None, failed)
        array.flush()
        del array
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        atomic_write(_sidecar(file), json.dumps(
            {"shape": [n, *shape], "failed": {str(k): v for k, v in failed.items()}},
            indent=1).encode())
        os.replace(tmp, file)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        if tmp is not None and tmp.exists():
            tmp.unlink()
    return DecodedImages(None, file, failed)


def _sidecar(file: Path) -> Path:
    return file.with_suffix(".json")


def _open(file: Path, n: int, shape: tuple[int, int, int]) -> DecodedImages | None:
    """A complete cache file of the expected shape, or None (then it is rebuilt)."""
    try:
        meta = json.loads(_sidecar(file).read_text())
        array = np.load(file, mmap_mode="r")
    except (OSError, ValueError):
        return None
    if array.shape != (n, *shape) or array.dtype != np.uint8 or meta.get("shape") != [n, *shape]:
        return None
    return DecodedImages(None, file, {int(k): v for k, v in meta.get("failed", {}).items()})
