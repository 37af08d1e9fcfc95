import numpy as np
import torch

from forgetting.data.digits import load_digits


def test_split_sizes_stratification_and_keys() -> None:
    data = load_digits()
    assert (len(data.train), len(data.test)) == (1437, 360)
    assert data.num_classes == 10 and data.class_names[3] == "3"
    counts = np.bincount(data.labels) / len(data.labels)
    assert np.allclose(counts, np.bincount(data.test_labels) / 360, atol=0.01)
    assert len(set(data.sample_keys)) == 1437 and data.sample_keys[0].startswith("digits/")
    x, y, i = data.train_eval[10]
    assert x.shape == (3, 32, 32) and x.min() >= 0.0 and x.max() <= 1.0 and i == 10
    assert int(y) == data.labels[10]


def test_split_depends_on_split_seed_only() -> None:
    a, b, c = load_digits(split_seed=0), load_digits(split_seed=0), load_digits(split_seed=1)
    np.testing.assert_array_equal(a.sample_keys, b.sample_keys)
    assert not np.array_equal(a.sample_keys, c.sample_keys)
    assert len(set(a.sample_keys) | set(c.sample_keys)) <= 1797


def test_training_view_augments_and_eval_view_does_not() -> None:
    data = load_digits(image_size=16)
    torch.manual_seed(0)
    shifted = [data.train[0][0] for _ in range(5)]
    assert any(not torch.equal(shifted[0], s) for s in shifted[1:])
    assert torch.equal(data.train_eval[0][0], data.train_eval[0][0])
    assert data.train_eval[0][0].shape == (3, 16, 16)
    plain = load_digits(image_size=16, augment=False)
    assert torch.equal(plain.train[0][0], plain.train_eval[0][0])
