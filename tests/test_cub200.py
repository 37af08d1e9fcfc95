"""CUB-200-2011 read from a tiny tree in the exact official layout."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import REPO, cli
from image_trees import CUB_CLASSES, CUB_IMAGES, make_cub

from forgetting.data import DatasetError
from forgetting.data.cub200 import load_cub200, readable
from forgetting.dynamics import Dynamics


@pytest.fixture
def cub(tmp_path: Path) -> Path:
    return make_cub(tmp_path / "data")


def test_official_split_keys_labels_and_class_names(cub: Path) -> None:
    data = load_cub200(str(cub), image_size=8)
    train = [(i, c - 1) for i, c, t in CUB_IMAGES if t == 1]
    test = [(i, c - 1) for i, c, t in CUB_IMAGES if t == 0]
    assert data.sample_keys.tolist() == [str(i) for i, _ in train]
    assert data.labels.tolist() == [c for _, c in train]
    assert data.test_labels.tolist() == [c for _, c in test]
    assert (len(data.train), len(data.train_eval), len(data.test)) == (9, 9, 6)
    assert data.val is None and data.excluded == []
    assert data.class_names == ["Black footed Albatross", "Laysan Albatross", "Sooty Albatross"]
    assert data.split["n_train"] == 9 and data.split["n_test"] == 6
    image, label, index = data.train_eval[4]
    assert image.dtype == torch.uint8 and image.shape == (3, 8, 8)
    assert (label, index) == (data.labels[4], 4)


def test_root_may_be_the_cub_folder_itself(cub: Path) -> None:
    data = load_cub200(str(cub / "CUB_200_2011"), image_size=8)
    assert len(data.sample_keys) == 9


def test_readable_class_names() -> None:
    assert readable("001.Black_footed_Albatross") == "Black footed Albatross"
    assert readable("200.Common_Yellowthroat") == "Common Yellowthroat"


def test_validation_carve_out_is_stratified_and_fixed_by_split_seed(cub: Path) -> None:
    a = load_cub200(str(cub), image_size=8, val_fraction=0.34, split_seed=0)
    b = load_cub200(str(cub), image_size=8, val_fraction=0.34, split_seed=0)
    assert np.bincount(a.val_labels).tolist() == [1, 1, 1]
    assert len(a.sample_keys) == 6 and a.split["n_val"] == 3
    np.testing.assert_array_equal(a.sample_keys, b.sample_keys)
    official = load_cub200(str(cub), image_size=8).sample_keys
    val_keys = {str(i) for i in np.asarray(official)} - set(a.sample_keys.tolist())
    assert len(val_keys) == 3
    others = {tuple(load_cub200(str(cub), image_size=8, val_fraction=0.34, split_seed=s)
                    .sample_keys) for s in range(1, 6)}
    assert len(others | {tuple(a.sample_keys)}) > 1


def test_crop_to_bbox_crops_before_resizing(cub: Path) -> None:
    full = load_cub200(str(cub), image_size=8, augment=False)
    cropped = load_cub200(str(cub), image_size=8, augment=False, crop_to_bbox=True)
    assert not torch.equal(full.train_eval[0][0], cropped.train_eval[0][0])
    assert cropped.train_eval[0][0].shape == (3, 8, 8)


def test_crop_to_bbox_without_the_box_file_names_it(tmp_path: Path) -> None:
    root = make_cub(tmp_path, boxes=False)
    assert len(load_cub200(str(root), image_size=8).sample_keys) == 9
    with pytest.raises(DatasetError, match="bounding_boxes.txt"):
        load_cub200(str(root), image_size=8, crop_to_bbox=True)


@pytest.mark.parametrize("missing", [None, "images.txt", "image_class_labels.txt",
                                     "train_test_split.txt", "classes.txt"])
def test_missing_root_or_metadata_lists_the_layout_and_the_download(
        tmp_path: Path, missing: str | None) -> None:
    root = tmp_path / "nowhere"
    if missing is not None:
        root = make_cub(tmp_path / "data")
        (root / "CUB_200_2011" / missing).unlink()
    with pytest.raises(DatasetError) as err:
        load_cub200(str(root))
    message = str(err.value)
    assert "data.caltech.edu" in message and "train_test_split.txt" in message
    assert "images/<class_folder>/<file>.jpg" in message
    assert (missing or str(root)) in message


def test_missing_image_and_malformed_line_are_named(cub: Path) -> None:
    base = cub / "CUB_200_2011"
    victim = sorted((base / "images").rglob("*.jpg"))[0]
    victim.unlink()
    with pytest.raises(DatasetError, match=victim.name):
        load_cub200(str(cub))
    make_cub(cub)
    (base / "train_test_split.txt").write_text("1 1\n2 yes\n")
    with pytest.raises(DatasetError, match=r"train_test_split.txt, line 2.*'2 yes'"):
        load_cub200(str(cub))


def test_ids_must_agree_across_files_and_classes_must_be_listed(cub: Path) -> None:
    base = cub / "CUB_200_2011"
    lines = (base / "image_class_labels.txt").read_text().splitlines()
    (base / "image_class_labels.txt").write_text("\n".join(lines[1:]) + "\n")
    with pytest.raises(DatasetError, match="image_class_labels.txt does not list"):
        load_cub200(str(cub))
    make_cub(cub)
    (base / "classes.txt").write_text(f"1 {CUB_CLASSES[0]}\n2 {CUB_CLASSES[1]}\n")
    with pytest.raises(DatasetError, match=r"class ids \[3\]"):
        load_cub200(str(cub))


def test_one_epoch_through_the_cli_with_the_cache(cub: Path, tmp_path: Path) -> None:
    out = cli(["dataset=cub200", f"dataset.root={cub}", "dataset.image_size=16",
               "dataset.cache=true", f"dataset.cache_dir={tmp_path}/cache",
               "arch.model_name=test_resnet", "train.warmup_epochs=0", "train.epochs=1",
               "train.batch_size=4", "logger=none", f"hydra.run.dir={tmp_path}/run"], cwd=REPO)
    assert out.returncode == 0, out.stderr
    record = Dynamics.load(tmp_path / "run" / "dynamics")
    assert record.sample_keys.tolist() == [str(i) for i, _, t in CUB_IMAGES if t == 1]
    assert record.class_names[0] == "Black footed Albatross" and record.correct.shape == (1, 9)
    assert record.meta["dataset"] == "cub200" and record.meta["excluded"] == []
    metrics = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[-1])
    assert {"test_acc", "test_balanced_acc", "test_macro_f1"} <= set(metrics)
    assert len(list((tmp_path / "cache" / "cub200").glob("*-16px-*.npy"))) == 2
