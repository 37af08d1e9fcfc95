"""OCTDL read from a tiny tree in the exact published layout (CSV + one folder per class)."""

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, cli, compose_train
from image_trees import OCTDL_ROWS, make_octdl, truncate

from forgetting.data import DataBundle, DatasetError
from forgetting.data.octdl import CLASSES, load_octdl
from forgetting.dynamics import Dynamics
from forgetting.train import build_data

PATIENT = {f: p for f, _, p in OCTDL_ROWS}
DISEASE = {f: d for f, d, _ in OCTDL_ROWS}


def keys(data: DataBundle) -> dict[str, list[str]]:
    """The image paths of each split."""
    pools = {"train": data.train_eval, "val": data.val, "test": data.test}
    return {s: sorted(d.pool.files.paths[d.positions]) for s, d in pools.items() if d is not None}


@pytest.fixture
def octdl(tmp_path: Path) -> Path:
    return make_octdl(tmp_path / "octdl")


def test_labels_come_from_the_csv_joined_on_file_name(octdl: Path) -> None:
    data = load_octdl(str(octdl), image_size=8)
    assert data.class_names == list(CLASSES)
    assert data.sample_keys.tolist() == sorted(data.sample_keys.tolist())
    assert [CLASSES[y] for y in data.labels] == [DISEASE[k] for k in data.sample_keys]
    n = {s: data.split[f"n_{s}"] for s in ("train", "val", "test")}
    assert sum(n.values()) == len(OCTDL_ROWS) and min(n.values()) > 0
    test_files = {Path(p).stem for p in keys(data)["test"]}
    assert [CLASSES[y] for y in data.test_labels] == [DISEASE[f] for f in sorted(test_files)]


def test_no_patient_is_in_two_splits(octdl: Path) -> None:
    for seed in range(6):
        data = load_octdl(str(octdl), image_size=8, split_seed=seed)
        patients = {s: {PATIENT[Path(p).stem] for p in paths} for s, paths in keys(data).items()}
        assert not patients["train"] & patients["val"]
        assert not patients["train"] & patients["test"] and not patients["val"] & patients["test"]
        assert "4001" in patients["train"]  # the only RAO patient stays in training


def test_split_depends_on_split_seed_not_on_row_order_or_seed(tmp_path: Path) -> None:
    a = load_octdl(str(make_octdl(tmp_path / "a", order_seed=0)), image_size=8)
    b = load_octdl(str(make_octdl(tmp_path / "b", order_seed=7)), image_size=8)
    assert keys(a) == keys(b)
    np.testing.assert_array_equal(a.sample_keys, b.sample_keys)
    by_seed = [build_data(cfg)
               for cfg in (compose_train(["dataset=octdl", f"dataset.root={tmp_path / 'a'}",
                                          f"seed={s}"]) for s in (0, 5))]
    np.testing.assert_array_equal(by_seed[0].sample_keys, by_seed[1].sample_keys)
    others = {tuple(load_octdl(str(tmp_path / "a"), image_size=8, split_seed=s).sample_keys)
              for s in range(1, 6)}
    assert len(others | {tuple(a.sample_keys)}) > 1


def test_no_validation_split_when_its_fraction_is_zero(octdl: Path) -> None:
    data = load_octdl(str(octdl), image_size=8, val_fraction=0.0)
    assert data.val is None and data.split["n_train"] + data.split["n_test"] == len(OCTDL_ROWS)


def test_missing_root_or_csv_lists_the_layout_and_mendeley(tmp_path: Path, octdl: Path) -> None:
    (octdl / "OCTDL_labels.csv").unlink()
    for root in (tmp_path / "nowhere", octdl):
        with pytest.raises(DatasetError) as err:
            load_octdl(str(root))
        message = str(err.value)
        assert "Mendeley Data" in message and "10.17632/sncdhf53xc" in message
        assert "OCTDL_labels.csv" in message and "AMD/ DME/ ERM/ NO/ RAO/ RVO/ VID/" in message


def test_csv_without_a_required_column_names_it(tmp_path: Path) -> None:
    root = make_octdl(tmp_path, columns=("file_name", "disease", "eye"))
    with pytest.raises(DatasetError, match=r"no column patient_id \(columns: \['file_name'"):
        load_octdl(str(root))


def test_unknown_disease_label_is_named(tmp_path: Path) -> None:
    root = make_octdl(tmp_path, rows=[*OCTDL_ROWS, ("csr_9001_1", "CSR", "9001")])
    with pytest.raises(DatasetError, match=r"unknown disease 'CSR' for 'csr_9001_1'"):
        load_octdl(str(root))


def test_file_name_without_an_image_is_named(octdl: Path) -> None:
    (octdl / "DME" / "dme_3002_1.jpg").unlink()
    with pytest.raises(DatasetError, match=r"file_name 'dme_3002_1' \(DME\).*has no image"):
        load_octdl(str(octdl))
    (octdl / "AMD" / "dme_3002_1.jpg").write_bytes((octdl / "AMD" / "amd_1001_1.jpg").read_bytes())
    with pytest.raises(DatasetError, match=r"labelled DME .* but its image is .*AMD"):
        load_octdl(str(octdl))


def test_rows_are_read_whatever_the_case_of_the_disease(tmp_path: Path) -> None:
    root = make_octdl(tmp_path)
    text = (root / "OCTDL_labels.csv").read_text().replace(",AMD,", ",amd,")
    (root / "OCTDL_labels.csv").write_text(text)
    data = load_octdl(str(root), image_size=8)
    n_amd = sum(d == "AMD" for _, d, _ in OCTDL_ROWS)
    assert sum(data.split["class_counts"][s][0] for s in ("train", "val", "test")) == n_amd


def test_one_epoch_through_the_cli_skipping_a_truncated_image(octdl: Path,
                                                              tmp_path: Path) -> None:
    truncate(octdl / "NO" / "no_2001_1.jpg")
    args = ["dataset=octdl", f"dataset.root={octdl}", "dataset.image_size=16",
            "arch.model_name=test_resnet", "train.warmup_epochs=0", "train.epochs=1",
            "train.batch_size=4", "train.class_weights=balanced", "logger=none"]
    refused = cli([*args, f"hydra.run.dir={tmp_path}/refused", "dataset.cache=true",
                   f"dataset.cache_dir={tmp_path}/cache"], cwd=REPO)
    assert refused.returncode != 0
    assert "no_2001_1.jpg" in refused.stderr and "dataset.skip_corrupt=true" in refused.stderr
    out = cli([*args, "dataset.skip_corrupt=true", f"hydra.run.dir={tmp_path}/run"], cwd=REPO)
    assert out.returncode == 0, out.stderr
    record = Dynamics.load(tmp_path / "run" / "dynamics")
    (excluded,) = record.meta["excluded"]
    assert excluded["key"] == "no_2001_1" and excluded["file"].endswith("NO/no_2001_1.jpg")
    assert "no_2001_1" not in record.sample_keys.tolist()
    assert record.meta["class_weights"] == "balanced"
    assert record.meta["split"]["n_excluded"] == 1 and "patients" in record.meta["split"]
    metrics = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[-1])
    for split in ("test", "val"):
        assert {f"{split}_acc", f"{split}_balanced_acc", f"{split}_macro_f1"} <= set(metrics)
