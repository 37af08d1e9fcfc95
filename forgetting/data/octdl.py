"""OCTDL (Kulyabin et al. 2024): 2,064 retinal OCT scans of 821 patients, 7 classes, 56:1 imbalance.

`root` holds `OCTDL_labels.csv` and one folder per class (or an `OCTDL/` folder holding them).
Labels come from the CSV, joined to the images on `file_name`; the train/val/test split is by
patient (no patient in two splits), stratified by each patient's rarest disease, fixed by
`split_seed`. Samples are ordered by file name, which is also their key.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np

from forgetting.config import check_fractions
from forgetting.data import DataBundle, DatasetError
from forgetting.data.images import ImageFiles, ImageOptions, Split, assemble
from forgetting.data.splits import assign_splits

# Age-related macular degeneration, diabetic macular edema, epiretinal membrane, normal, retinal
# artery occlusion, retinal vein occlusion, vitreomacular interface disease: the class names.
CLASSES = ("AMD", "DME", "ERM", "NO", "RAO", "RVO", "VID")
COLUMNS = ("file_name", "disease", "patient_id")
CSV_NAME = "OCTDL_labels.csv"
EXTENSIONS = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp")
DOWNLOAD = ("Mendeley Data, doi 10.17632/sncdhf53xc "
            "(https://data.mendeley.com/datasets/sncdhf53xc)")
LAYOUT = f"""<dataset.root>/
    {CSV_NAME}     columns include file_name, disease, patient_id
    AMD/ DME/ ERM/ NO/ RAO/ RVO/ VID/    one folder per disease: <file_name>[.jpg]"""


def load_octdl(
    root: str = "data", test_fraction: float = 0.2, val_fraction: float = 0.1,
    split_seed: int = 0, name: str = "octdl", **options: Any,
) -> DataBundle:
    """Patient-level stratified train/val/test split; `options` as in `ImageOptions`."""
    check_fractions(test_fraction=test_fraction, val_fraction=val_fraction)
    base = find_root(Path(root).expanduser())
    files, diseases, patients = _read_csv(base / CSV_NAME)
    paths = _join_images(base, files, diseases)
    labels = np.array([CLASSES.index(d) for d in diseases], np.int64)
    parts, n_patients = _patient_split(labels, patients, (test_fraction, val_fraction), split_seed)
    order = np.argsort(files, kind="stable")
    files, paths, labels, parts = files[order], paths[order], labels[order], parts[order]
    pool = Split("all", np.arange(len(files)), labels, files)
    splits = {"test": pool.take(parts == 0), "val": pool.take(parts == 1),
              "train": pool.take(parts == 2)}
    if val_fraction == 0:
        del splits["val"]
    info = {"by": "patient_id", "test_fraction": test_fraction, "val_fraction": val_fraction,
            "split_seed": split_seed, "root": str(base),
            "patients": {s: n_patients[i] for i, s in enumerate(("test", "val", "train"))}}
    return assemble(name, {"all": ImageFiles(base, paths)}, splits, list(CLASSES),
                    ImageOptions(**options), info)


def find_root(root: Path) -> Path:
    """`root`, or `root/OCTDL`, whichever holds OCTDL_labels.csv; DatasetError otherwise."""
    for base in (root, root / "OCTDL"):
        if (base / CSV_NAME).is_file():
            return base
    what = "does not exist" if not root.exists() else f"holds no {CSV_NAME}"
    raise DatasetError(
        f"dataset.root={root} {what}. OCTDL is expected as\n{LAYOUT}\nDownload it from "
        f"{DOWNLOAD}, extract it, and pass dataset.root=<the folder holding {CSV_NAME}> "
        "(or set FORGETTING_DATA)."
    )


def _read_csv(path: Path) -> tuple[np.ndarray, list[str], np.ndarray]:
    """file_name, disease code and patient id of every row; DatasetError naming row and value."""
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        header = [c.strip() for c in reader.fieldnames or []]
        absent = [c for c in COLUMNS if c not in header]
        if absent:
            raise DatasetError(f"{path} has no column {', '.join(absent)} (columns: {header}); "
                               f"{DOWNLOAD} ships it with {', '.join(COLUMNS)}")
        rows = [{k.strip(): (v or "").strip() for k, v in row.items() if k} for row in reader]
    codes = {c.upper(): c for c in CLASSES}
    files, diseases, patients = [], [], []
    for number, row in enumerate(rows, start=2):
        disease = codes.get(row["disease"].upper())
        if disease is None:
            raise DatasetError(f"{path}, line {number}: unknown disease {row['disease']!r} for "
                               f"{row['file_name']!r}; OCTDL's classes are {', '.join(CLASSES)}")
        if not row["file_name"] or not row["patient_id"]:
            raise DatasetError(f"{path}, line {number}: empty file_name or patient_id")
        files.append(row["file_name"])
        diseases.append(disease)
        patients.append(row["patient_id"])
    names, counts = np.unique(np.array(files, dtype=str), return_counts=True)
    if np.any(counts > 1):
        raise DatasetError(f"{path} lists file_name {names[counts > 1][0]!r} more than once")
    if not files:
        raise DatasetError(f"{path} lists no images")
    return np.array(files, dtype=str), diseases, np.array(patients, dtype=str)


def _join_images(base: Path, files: np.ndarray, diseases: list[str]) -> np.ndarray:
    """The image of each row, `<disease>/<file_name>` with or without an extension; DatasetError
    naming a file_name with no image, or whose image sits in another disease's folder."""
    where: dict[str, str] = {}
    for code in CLASSES:
        folder = base / code
        if folder.is_dir():
            for entry in sorted(folder.iterdir()):
                if entry.suffix.lower() in EXTENSIONS:
                    where.setdefault(entry.name, f"{code}/{entry.name}")
                    where.setdefault(entry.stem, f"{code}/{entry.name}")
    paths = []
    for file, disease in zip(files.tolist(), diseases, strict=True):
        found = where.get(file)
        if found is None:
            raise DatasetError(
                f"file_name {file!r} ({disease}) of {base / CSV_NAME} has no image: expected "
                f"{base / disease / file} (with or without one of {', '.join(EXTENSIONS)})")
        if found.split("/")[0] != disease:
            raise DatasetError(f"file_name {file!r} is labelled {disease} in {base / CSV_NAME} "
                               f"but its image is {base / found}")
        paths.append(found)
    return np.array(paths, dtype=str)


def _patient_split(
    labels: np.ndarray, patients: np.ndarray, fractions: tuple[float, float], seed: int
) -> tuple[np.ndarray, list[int]]:
    """Part of every image (0 test, 1 val, 2 train) from a split of the patients, each patient
    stratified by its rarest disease; also the number of patients per part."""
    unique, patient_of = np.unique(patients, return_inverse=True)
    rarity = np.argsort(np.argsort(np.bincount(labels, minlength=len(CLASSES)), kind="stable"),
                        kind="stable")
    stratum = np.full(len(unique), len(CLASSES), np.int64)
    np.minimum.at(stratum, patient_of, rarity[labels])
    sizes = np.bincount(patient_of, minlength=len(unique))
    parts = assign_splits(stratum, fractions, seed, sizes=sizes)
    return parts[patient_of], np.bincount(parts, minlength=3).tolist()
