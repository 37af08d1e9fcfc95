import json
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY, compose_train
from hypothesis import given
from hypothesis import strategies as st
from image_trees import make_cub
from sklearn.metrics import balanced_accuracy_score, f1_score
from sklearn.utils.class_weight import compute_class_weight

from forgetting.dynamics import PER_EPOCH, PER_SAMPLE, Dynamics
from forgetting.train import run
from forgetting.training import (
    balanced_accuracy,
    batches,
    class_weights,
    epoch_seed,
    macro_f1,
    n_batches,
)


@given(size=st.integers(1, 700), batch_size=st.integers(1, 130))
def test_batches_cover_the_order_once_and_never_end_in_a_single(size: int, batch_size: int) -> None:
    order = np.random.default_rng(size).permutation(size)
    chunks = batches(order, batch_size)
    assert [i for c in chunks for i in c] == order.tolist()
    assert len(chunks) == n_batches(size, batch_size)
    if len(chunks) > 1 and batch_size > 1:
        assert len(chunks[-1]) > 1


def test_balanced_accuracy_matches_sklearn() -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 5, 300)
    preds = np.where(rng.random(300) < 0.6, labels, rng.integers(0, 5, 300))
    assert balanced_accuracy(labels, preds) == pytest.approx(balanced_accuracy_score(labels, preds))


def test_epoch_seed_differs_by_seed_and_epoch() -> None:
    seeds = {epoch_seed(s, e) for s in range(3) for e in range(10)}
    assert len(seeds) == 30 and epoch_seed(1, 2) == epoch_seed(1, 2)


@given(seed=st.integers(0, 2**31), n=st.integers(1, 300), k=st.integers(1, 8))
def test_macro_f1_matches_sklearn(seed: int, n: int, k: int) -> None:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, k, n)
    preds = np.where(rng.random(n) < 0.5, labels, rng.integers(0, k + 1, n))
    expected = f1_score(labels, preds, average="macro", zero_division=0)
    assert macro_f1(labels, preds) == pytest.approx(expected)


def test_balanced_class_weights_match_sklearn() -> None:
    labels = np.repeat([0, 1, 3], [56, 7, 1])
    weights = class_weights(labels, 5)
    present = np.array([0, 1, 3])
    expected = compute_class_weight("balanced", classes=present, y=labels)
    np.testing.assert_allclose(weights[present], expected)
    assert weights[2] == weights[4] == 0


def finished(overrides: list[str], run_dir: Path) -> tuple[Dynamics, list[dict]]:
    """The record and the metrics (timings left out) of a run of `TINY + overrides`."""
    run(compose_train(TINY + overrides), run_dir=run_dir)
    metrics = [{k: v for k, v in json.loads(line).items()
                if not k.endswith(("_seconds", "images_per_s"))}
               for line in (run_dir / "metrics.jsonl").open()]
    return Dynamics.load(run_dir / "dynamics"), metrics


@pytest.mark.parametrize("dataset", ["digits", "cub200"])
def test_device_and_loader_paths_give_identical_records_without_augmentation(
        dataset: str, tmp_path: Path) -> None:
    overrides = ["dataset.augment=false"]
    if dataset == "cub200":
        overrides += ["dataset=cub200", f"dataset.root={make_cub(tmp_path / 'data')}",
                      "dataset.cache=true", "dataset.cache_in_memory=true"]
    device, device_metrics = finished([*overrides, "dataset.device_cache=true"], tmp_path / "d")
    loader, loader_metrics = finished([*overrides, "dataset.device_cache=false"], tmp_path / "l")
    assert (device.meta["data_path"], loader.meta["data_path"]) == ("device", "loader")
    assert device.observed.all() and np.isfinite(device.warmup_loss).all()
    for name in PER_SAMPLE + PER_EPOCH:
        np.testing.assert_array_equal(getattr(device, name), getattr(loader, name), err_msg=name)
    assert device_metrics == loader_metrics


def test_tracking_none_trains_and_records_nothing(tmp_path: Path) -> None:
    record, metrics = finished(["tracking.mode=none"], tmp_path)
    assert record.meta["tracking_mode"] == "none" and record.presented.all()
    assert not record.observed.any() and np.isnan(record.warmup_loss).all()
    assert [m["forgetting_events"] for m in metrics] == [0, 0] and metrics[-1]["test_acc"] > 0
