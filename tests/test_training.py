import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sklearn.metrics import balanced_accuracy_score, f1_score
from sklearn.utils.class_weight import compute_class_weight

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
