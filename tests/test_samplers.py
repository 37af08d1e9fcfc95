import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from forgetting.samplers import RandomSampler, budget_count


@given(n=st.integers(1, 5000), budget=st.floats(0.001, 1.0), epoch=st.integers(0, 50))
def test_budget_is_exact_and_distinct(n: int, budget: float, epoch: int) -> None:
    sampler = RandomSampler(n, seed=1, budget=budget)
    order = sampler.order(epoch, warmup=False)
    assert len(order) == budget_count(budget, n) == sampler.epoch_size(False)
    assert len(np.unique(order)) == len(order) and order.min() >= 0 and order.max() < n


def test_budget_count_rounds_halves_up() -> None:
    assert [budget_count(0.5, n) for n in (1437, 10, 3)] == [719, 5, 2]
    assert budget_count(0.0001, 10) == 1


def test_warmup_and_full_budget_present_everyone_shuffled() -> None:
    sampler = RandomSampler(100, seed=0, budget=0.3)
    warm = sampler.order(0, warmup=True)
    assert sorted(warm.tolist()) == list(range(100)) and warm.tolist() != list(range(100))
    full = RandomSampler(100, seed=0).order(3, warmup=False)
    assert sorted(full.tolist()) == list(range(100))


def test_draws_depend_only_on_seed_and_epoch() -> None:
    a, b = RandomSampler(50, seed=2, budget=0.5), RandomSampler(50, seed=2, budget=0.5)
    b.order(0, warmup=False)
    np.testing.assert_array_equal(a.order(4, False), b.order(4, False))
    assert not np.array_equal(a.order(4, False), a.order(5, False))
    assert not np.array_equal(a.order(4, False), RandomSampler(50, 3, 0.5).order(4, False))


@pytest.mark.parametrize("budget", [0.0, -0.1, 1.01])
def test_bad_budget(budget: float) -> None:
    with pytest.raises(ValueError, match="sampler.budget"):
        RandomSampler(10, seed=0, budget=budget)
