"""Image folders in torchvision's `<root>/<class>/<image>` convention, one tree or split trees."""

from pathlib import Path

import numpy as np
import pytest
from image_trees import make_imagefolder, write_image

from forgetting.data import DatasetError
from forgetting.data.imagefolder import load_imagefolder


def test_one_tree_is_split_by_stratified_fractions(tmp_path: Path) -> None:
    root = make_imagefolder(tmp_path / "flowers", {"rose": 10, "daisy": 5, "tulip": 20})
    data = load_imagefolder(str(root), test_fraction=0.2, val_fraction=0.2, image_size=8)
    assert data.class_names == ["daisy", "rose", "tulip"]
    assert np.bincount(data.test_labels).tolist() == [1, 2, 4]
    assert np.bincount(data.val_labels).tolist() == [1, 2, 4]
    assert np.bincount(data.labels).tolist() == [3, 6, 12]
    assert data.sample_keys[0].startswith("daisy/img") and data.sample_keys[0].endswith(".jpg")
    again = load_imagefolder(str(root), test_fraction=0.2, val_fraction=0.2, image_size=8)
    np.testing.assert_array_equal(data.sample_keys, again.sample_keys)
    assert data.train_eval[0][0].shape == (3, 8, 8)


def test_explicit_split_trees(tmp_path: Path) -> None:
    make_imagefolder(tmp_path / "train", {"a": 4, "b": 3})
    make_imagefolder(tmp_path / "test", {"a": 2, "b": 2}, seed=50)
    write_image(tmp_path / "train" / "b" / "nested" / "deep.png", seed=9)
    data = load_imagefolder(str(tmp_path), train_dir="train", test_dir="test", image_size=8)
    assert (len(data.sample_keys), len(data.test_labels), data.val) == (8, 4, None)
    assert "b/nested/deep.png" in data.sample_keys.tolist()
    make_imagefolder(tmp_path / "val", {"b": 1})
    data = load_imagefolder(str(tmp_path), train_dir="train", test_dir="test", val_dir="val",
                            image_size=8)
    assert data.val_labels.tolist() == [1] and len(data.sample_keys) == 8
    carved = load_imagefolder(str(tmp_path), train_dir="train", test_dir="test",
                              val_fraction=0.25, image_size=8)
    assert len(carved.val_labels) == 2 and len(carved.sample_keys) == 6


def test_bad_trees_are_named(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="is not a folder"):
        load_imagefolder(str(tmp_path / "nowhere"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="has no class folders"):
        load_imagefolder(str(tmp_path / "empty"))
    make_imagefolder(tmp_path / "train", {"a": 4, "b": 3})
    make_imagefolder(tmp_path / "test", {"a": 1, "c": 1})
    with pytest.raises(DatasetError, match=r"class folders \['c'\] that the training tree"):
        load_imagefolder(str(tmp_path), train_dir="train", test_dir="test")
    (tmp_path / "train" / "d").mkdir()
    with pytest.raises(DatasetError, match=r"train/d holds no images"):
        load_imagefolder(str(tmp_path / "train"))
