"""Any `<root>/<class>/<image>` tree (torchvision's ImageFolder convention): bring your own data.

Either one tree, split into train/val/test by stratified fractions (`split_seed`), or explicit
split trees `<root>/<train_dir>/<class>/...`, `<root>/<test_dir>/...` and optionally
`<root>/<val_dir>/...` (a missing val tree may be carved from train by `val_fraction`). Classes
are the sorted folder names of the training tree; keys are `<class>/<file>` paths relative to the
tree, ordered by class, then path. Images may sit in sub-folders of a class folder.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from forgetting.config import check_fractions
from forgetting.data import DataBundle, DatasetError
from forgetting.data.images import ImageFiles, ImageOptions, Split, assemble
from forgetting.data.splits import assign_splits

EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
LAYOUT = """<dataset.root>/<class>/<image>          one tree, split by dataset.test_fraction
or  <dataset.root>/<train_dir>/<class>/<image>   with dataset.train_dir=train dataset.test_dir=test
    <dataset.root>/<test_dir>/<class>/<image>    (and optionally dataset.val_dir=val)"""


def load_imagefolder(
    root: str, train_dir: str | None = None, val_dir: str | None = None,
    test_dir: str | None = None, test_fraction: float = 0.2, val_fraction: float = 0.0,
    split_seed: int = 0, name: str = "imagefolder", **options: Any,
) -> DataBundle:
    """One tree split by fractions, or explicit split trees; `options` as in `ImageOptions`."""
    base = Path(root).expanduser()
    if not base.is_dir():
        raise DatasetError(f"dataset.root={base} is not a folder. An image folder is\n{LAYOUT}")
    if test_dir is not None and train_dir is None:
        raise DatasetError(f"dataset.test_dir={test_dir} needs dataset.train_dir as well")
    carve = {"test_fraction": test_fraction} if test_dir is None else {}
    if val_dir is None:
        carve["val_fraction"] = val_fraction
    check_fractions(**carve)
    train_root = base / train_dir if train_dir is not None else base
    classes = _classes(train_root)
    trees = {"train": train_root}
    trees.update({s: base / d for s, d in (("test", test_dir), ("val", val_dir)) if d is not None})
    pools = {s: _tree(tree, classes, s) for s, tree in trees.items()}
    splits = {s: Split(s, np.arange(len(files)), labels, files.paths)
              for s, (files, labels) in pools.items()}
    fractions = [carve.get("test_fraction", 0.0), carve.get("val_fraction", 0.0)]
    if any(fractions):
        parts = assign_splits(splits["train"].labels, fractions, split_seed)
        for part, split in ((0, "test"), (1, "val")):
            if fractions[part] > 0:
                splits[split] = splits["train"].take(parts == part)
        splits["train"] = splits["train"].take(parts == 2)
    if "test" not in splits or len(splits["test"].labels) == 0:
        raise DatasetError(f"{base}: no test images; set dataset.test_fraction > 0 or "
                           "dataset.test_dir. An image folder is\n" + LAYOUT)
    info = {"root": str(base), "train_dir": train_dir, "val_dir": val_dir, "test_dir": test_dir,
            "test_fraction": carve.get("test_fraction"), "val_fraction": carve.get("val_fraction"),
            "split_seed": split_seed}
    return assemble(name, {s: files for s, (files, _) in pools.items()}, splits, classes,
                    ImageOptions(**options), info)


def _classes(tree: Path) -> list[str]:
    if not tree.is_dir():
        raise DatasetError(f"{tree} is not a folder. An image folder is\n{LAYOUT}")
    classes = sorted(e.name for e in os.scandir(tree) if e.is_dir() and not e.name.startswith("."))
    if not classes:
        raise DatasetError(f"{tree} has no class folders. An image folder is\n{LAYOUT}")
    return classes


def _tree(tree: Path, classes: list[str], split: str) -> tuple[ImageFiles, np.ndarray]:
    """Every image under `tree/<class>/` (recursively), sorted by path, with its class index."""
    found = _classes(tree)
    unknown = sorted(set(found) - set(classes))
    if unknown:
        raise DatasetError(f"the {split} tree {tree} has class folders {unknown} that the "
                           f"training tree does not have (its classes: {classes})")
    paths, labels = [], []
    for label, cls in enumerate(classes):
        images = sorted(
            str((Path(folder) / file).relative_to(tree))
            for folder, _, files in os.walk(tree / cls, followlinks=True)
            for file in files if file.lower().endswith(EXTENSIONS) and not file.startswith(".")
        )
        if not images and split == "train":
            raise DatasetError(f"the class folder {tree / cls} holds no images "
                               f"({', '.join(EXTENSIONS)})")
        paths += images
        labels += [label] * len(images)
    return ImageFiles(tree, np.array(paths, dtype=str)), np.array(labels, np.int64)
