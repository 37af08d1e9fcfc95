"""CUB-200-2011 (Wah et al. 2011): 11,788 photos of 200 bird species, the official split.

`root` holds `CUB_200_2011/` (or is that folder). Samples are ordered by image id; the key of a
sample is its CUB image id. `val_fraction` > 0 carves a validation split out of the official
training images, stratified by class and fixed by `split_seed`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from forgetting.config import check_fractions
from forgetting.data import DataBundle, DatasetError
from forgetting.data.images import ImageFiles, ImageOptions, Split, assemble
from forgetting.data.splits import assign_splits

DOWNLOAD = ("Caltech's data site, https://data.caltech.edu/records/65de6-vzc24 "
            "(CUB_200_2011.tgz; project page https://www.vision.caltech.edu/datasets/cub_200_2011/)")
LAYOUT = """<dataset.root>/CUB_200_2011/
    images.txt              <image_id> <class_folder>/<file>.jpg
    image_class_labels.txt  <image_id> <class_id>   (1-based)
    train_test_split.txt    <image_id> <is_training> (1 train, 0 test)
    classes.txt             <class_id> <class_folder>, e.g. 1 001.Black_footed_Albatross
    bounding_boxes.txt      <image_id> <x> <y> <width> <height>   (optional; dataset.crop_to_bbox)
    images/<class_folder>/<file>.jpg"""


def load_cub200(
    root: str = "data", val_fraction: float = 0.0, split_seed: int = 0,
    crop_to_bbox: bool = False, name: str = "cub200", **options: Any,
) -> DataBundle:
    """The official train/test split (5,994 / 5,794), optionally a stratified validation carve-out;
    `options` are the pixel and cache options of `ImageOptions`."""
    check_fractions(val_fraction=val_fraction)
    base = find_root(Path(root).expanduser())
    ids, paths = _table(base, "images.txt", (int, str))
    labels_of = _mapping(base, "image_class_labels.txt")
    training_of = _mapping(base, "train_test_split.txt")
    class_ids, folders = _table(base, "classes.txt", (int, str))
    _same_ids(base / "image_class_labels.txt", ids, labels_of)
    _same_ids(base / "train_test_split.txt", ids, training_of)
    order = np.argsort(ids, kind="stable")
    ids, paths = ids[order], paths[order]
    class_rank = {c: i for i, c in enumerate(sorted(class_ids.tolist()))}
    folder_of = dict(zip(class_ids.tolist(), folders.tolist(), strict=True))
    unknown = sorted({labels_of[i] for i in ids.tolist()} - set(class_rank))
    if unknown:
        raise DatasetError(f"{base / 'image_class_labels.txt'} uses class ids {unknown[:5]} that "
                           f"{base / 'classes.txt'} does not list")
    labels = np.array([class_rank[labels_of[i]] for i in ids.tolist()], np.int64)
    training = np.array([training_of[i] for i in ids.tolist()]) == 1
    boxes = _boxes(base, ids) if crop_to_bbox else None
    _require_images(base / "images", paths)
    keys = ids.astype(str)
    pools, splits = {}, {}
    for pool, mask in (("train", training), ("test", ~training)):
        pools[pool] = ImageFiles(base / "images", paths[mask],
                                 None if boxes is None else boxes[mask])
        splits[pool] = Split(pool, np.arange(mask.sum()), labels[mask], keys[mask])
    if val_fraction > 0:
        is_val = assign_splits(splits["train"].labels, [val_fraction], split_seed) == 0
        splits["val"] = splits["train"].take(is_val)
        splits["train"] = splits["train"].take(~is_val)
    names = [readable(folder_of[c]) for c in class_rank]
    info = {"official": True, "val_fraction": val_fraction, "split_seed": split_seed,
            "crop_to_bbox": crop_to_bbox, "root": str(base)}
    return assemble(name, pools, splits, names, ImageOptions(**options), info)


def readable(folder: str) -> str:
    """`"001.Black_footed_Albatross"` -> `"Black footed Albatross"`."""
    return re.sub(r"^\d+\.", "", folder).replace("_", " ")


def find_root(root: Path) -> Path:
    """`root/CUB_200_2011`, or `root` itself when it is that folder; DatasetError otherwise."""
    for base in (root / "CUB_200_2011", root):
        if (base / "images.txt").is_file():
            return base
    what = "does not exist" if not root.exists() else "holds no CUB_200_2011/images.txt"
    raise DatasetError(
        f"dataset.root={root} {what}. CUB-200-2011 is expected as\n{LAYOUT}\n"
        f"Download it from {DOWNLOAD}, extract it, and pass dataset.root=<the folder holding "
        "CUB_200_2011/> (or set FORGETTING_DATA)."
    )


def _table(base: Path, file: str, types: tuple[type, ...]) -> tuple[np.ndarray, ...]:
    """The columns of a whitespace-separated metadata file; DatasetError naming file and line."""
    path = base / file
    if not path.is_file():
        raise DatasetError(f"{path} is missing. CUB-200-2011 is expected as\n{LAYOUT}\n"
                           f"Download it from {DOWNLOAD}.")
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split(maxsplit=len(types) - 1)
        try:
            if len(fields) != len(types):
                raise ValueError(f"{len(fields)} fields, expected {len(types)}")
            rows.append(tuple(t(f) for t, f in zip(types, fields, strict=True)))
        except ValueError as exc:
            raise DatasetError(f"{path}, line {number}: cannot read {line!r} ({exc})") from exc
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in types]
    dtypes = {str: object, float: np.float64, int: np.int64}
    return tuple(np.array(c, dtype=dtypes[t]) for c, t in zip(columns, types, strict=True))


def _mapping(base: Path, file: str) -> dict[int, int]:
    keys, values = _table(base, file, (int, int))
    return dict(zip(keys.tolist(), values.tolist(), strict=True))


def _same_ids(path: Path, ids: np.ndarray, table: dict[int, Any]) -> None:
    missing = np.setdiff1d(ids, np.fromiter(table, np.int64))
    extra = np.setdiff1d(np.fromiter(table, np.int64), ids)
    if len(missing) or len(extra):
        raise DatasetError(
            f"{path} does not list the image ids of images.txt: {len(missing)} missing "
            f"(e.g. {missing[:5].tolist()}), {len(extra)} unknown (e.g. {extra[:5].tolist()})"
        )


def _boxes(base: Path, ids: np.ndarray) -> np.ndarray:
    """(N, 4) boxes in image-id order from bounding_boxes.txt."""
    path = base / "bounding_boxes.txt"
    if not path.is_file():
        raise DatasetError(f"dataset.crop_to_bbox=true needs {path}, which is missing. "
                           f"It comes with CUB_200_2011.tgz from {DOWNLOAD}.")
    box_ids, *coords = _table(base, "bounding_boxes.txt", (int, float, float, float, float))
    table = dict(zip(box_ids.tolist(), np.stack(coords, axis=1), strict=True))
    _same_ids(path, ids, table)
    return np.stack([table[i] for i in ids.tolist()])


def _require_images(images: Path, paths: np.ndarray) -> None:
    missing = [str(images / p) for p in paths if not (images / p).is_file()]
    if missing:
        raise DatasetError(
            f"{len(missing)} images listed in images.txt are not on disk, e.g. "
            f"{', '.join(missing[:3])}. Re-extract CUB_200_2011.tgz (from {DOWNLOAD})."
        )
