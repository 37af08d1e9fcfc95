import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from forgetting.data.splits import assign_splits


@settings(max_examples=60, deadline=None)
@given(counts=st.lists(st.integers(1, 40), min_size=1, max_size=6),
       test=st.floats(0.0, 0.45), val=st.floats(0.0, 0.45), seed=st.integers(0, 2**31))
def test_each_stratum_is_split_by_its_fractions(counts: list[int], test: float, val: float,
                                                seed: int) -> None:
    strata = np.repeat(np.arange(len(counts)), counts)
    parts = assign_splits(strata, [test, val], seed)
    assert set(np.unique(parts)) <= {0, 1, 2}
    for s, n in enumerate(counts):
        got = np.bincount(parts[strata == s], minlength=3)
        assert abs(got[0] - test * n) <= 1 and abs(got[0] + got[1] - (test + val) * n) <= 1
    np.testing.assert_array_equal(parts, assign_splits(strata, [test, val], seed))


def test_a_stratum_of_one_unit_stays_in_training() -> None:
    assert assign_splits(np.array([5]), [0.2, 0.1], 0).tolist() == [2]


def test_sized_units_split_by_their_total_size() -> None:
    sizes = np.array([1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 10])
    parts = assign_splits(np.zeros(11, int), [0.5], 3, sizes=sizes)
    assert abs(sizes[parts == 0].sum() - 10) <= 5


def test_the_seed_changes_the_split() -> None:
    strata = np.repeat(np.arange(3), 20)
    splits = {tuple(assign_splits(strata, [0.2], s)) for s in range(5)}
    assert len(splits) == 5
