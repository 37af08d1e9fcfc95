"""Tiny image datasets in the exact on-disk layouts of CUB-200-2011, OCTDL and image folders."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from PIL import Image

CUB_CLASSES = ["001.Black_footed_Albatross", "002.Laysan_Albatross", "003.Sooty_Albatross"]
# (image id, class id, is_training): 3 classes x (3 train + 2 test); ids interleave the classes.
CUB_IMAGES = [(i, 1 + (i - 1) % 3, int((i - 1) // 3 not in (1, 3))) for i in range(1, 16)]
# (file_name, disease, patient_id): AMD common, RAO in one patient, one patient with two diseases.
OCTDL_ROWS = [
    *[(f"amd_{p}_{k}", "AMD", str(p)) for p in range(1001, 1009) for k in (1, 2)],
    *[(f"no_{p}_1", "NO", str(p)) for p in range(2001, 2006)],
    ("dme_3001_1", "DME", "3001"), ("dme_3002_1", "DME", "3002"), ("dme_3003_1", "DME", "3003"),
    ("erm_1001_3", "ERM", "1001"),
    ("rao_4001_1", "RAO", "4001"), ("rao_4001_2", "RAO", "4001"),
]


def write_image(path: Path, seed: int, size: tuple[int, int] = (12, 10)) -> Path:
    """A small real JPEG (or PNG, by suffix) with content that differs by `seed`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, quality=95)
    return path


def truncate(path: Path) -> Path:
    """Cut a JPEG in half: a truncated image file."""
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def make_cub(root: Path, boxes: bool = True) -> Path:
    """`root/CUB_200_2011/` with the official metadata files (lines in shuffled order)."""
    base = root / "CUB_200_2011"
    rng = np.random.default_rng(0)
    lines: dict[str, list[str]] = {"images": [], "labels": [], "split": [], "boxes": []}
    for image_id, class_id, training in CUB_IMAGES:
        rel = f"{CUB_CLASSES[class_id - 1]}/{CUB_CLASSES[class_id - 1][4:]}_{image_id:04d}.jpg"
        write_image(base / "images" / rel, seed=image_id, size=(12 + image_id % 4, 10))
        lines["images"].append(f"{image_id} {rel}")
        lines["labels"].append(f"{image_id} {class_id}")
        lines["split"].append(f"{image_id} {training}")
        lines["boxes"].append(f"{image_id} 2.0 1.0 6.0 5.0")
    files = {"images": "images.txt", "labels": "image_class_labels.txt",
             "split": "train_test_split.txt", "boxes": "bounding_boxes.txt"}
    for what, file in files.items():
        if what == "boxes" and not boxes:
            continue
        rows = lines[what]
        (base / file).write_text("\n".join(rows[i] for i in rng.permutation(len(rows))) + "\n")
    (base / "classes.txt").write_text(
        "".join(f"{i} {name}\n" for i, name in enumerate(CUB_CLASSES, start=1)))
    return root


def make_octdl(root: Path, rows: list[tuple[str, str, str]] | None = None,
               columns: tuple[str, ...] = ("file_name", "disease", "subcategory", "condition",
                                           "patient_id", "eye", "sex", "year"),
               order_seed: int = 0) -> Path:
    """`root/OCTDL_labels.csv` (extra columns, rows shuffled) and one folder per class."""
    rows = OCTDL_ROWS if rows is None else rows
    for k, (file_name, disease, _) in enumerate(rows):
        write_image(root / disease / f"{file_name}.jpg", seed=100 + k, size=(14, 12))
    order = np.random.default_rng(order_seed).permutation(len(rows))
    with open(root / "OCTDL_labels.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        for k in order:
            file_name, disease, patient = rows[k]
            values = {"file_name": file_name, "disease": disease, "patient_id": patient,
                      "subcategory": "x", "condition": "y", "eye": "OD", "sex": "F", "year": "2021"}
            writer.writerow([values.get(c, "") for c in columns])
    return root


def make_imagefolder(root: Path, classes: dict[str, int], seed: int = 0) -> Path:
    """`root/<class>/<k>.jpg` with `classes[class]` images each."""
    for c, (name, count) in enumerate(classes.items()):
        for k in range(count):
            write_image(root / name / f"img{k:02d}.jpg", seed=seed + 100 * c + k)
    return root
