from pathlib import Path

import numpy as np
import pytest
from conftest import compose_train
from hypothesis import given, settings
from hypothesis import strategies as st

from forgetting import samplers
from forgetting.config import ConfigError, validate
from forgetting.dynamics import PER_EPOCH, Dynamics
from forgetting.retention import fit_decay, forgetting_events, never_learned, retention_traces
from forgetting.samplers import (
    LeitnerSampler,
    OnlineSpacedRepetitionSampler,
    RandomSampler,
    SpacedRepetitionSampler,
    budget_count,
    reference_decay,
)

SAMPLERS = ["random", "spaced_repetition", "spaced_repetition_online", "leitner"]


def make(name: str, n: int, budget: float, seed: int = 0):
    if name == "spaced_repetition":
        lam = np.random.default_rng(n).exponential(0.5, n)
        lam[::7] = np.inf
        lam[1::5] = 0.0
        return SpacedRepetitionSampler(n, seed, lam=lam, budget=budget)
    cls = {"random": RandomSampler, "spaced_repetition_online": OnlineSpacedRepetitionSampler,
           "leitner": LeitnerSampler}[name]
    return cls(n, seed, budget=budget)


def simulate(sampler, n: int, epochs: int, warmup: int = 1, seed: int = 0) -> list[np.ndarray]:
    """Drive a sampler as the Trainer does, with random correctness; the orders it gave."""
    rng = np.random.default_rng(seed)
    correct, observed = rng.random((epochs, n)) < 0.6, rng.random((epochs, n)) < 0.9
    orders = []
    for epoch in range(epochs):
        order = sampler.order(epoch, epoch < warmup)
        orders.append(order)
        sampler.observe(epoch, correct, observed)
    return orders


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


@settings(max_examples=20, deadline=None)
@given(n=st.integers(1, 400), budget=st.floats(0.001, 1.0), name=st.sampled_from(SAMPLERS))
def test_every_sampler_presents_the_exact_budget_every_epoch(
    n: int, budget: float, name: str
) -> None:
    sampler = make(name, n, budget)
    for epoch, order in enumerate(simulate(sampler, n, epochs=5, warmup=1)):
        expected = n if epoch == 0 else budget_count(budget, n)
        assert len(order) == expected == sampler.epoch_size(epoch == 0)
        assert len(np.unique(order)) == len(order) and order.min() >= 0 and order.max() < n


@pytest.mark.parametrize("budget", [0.0, -0.1, 1.01])
@pytest.mark.parametrize("name", SAMPLERS)
def test_bad_budget_is_a_compose_time_error_for_every_sampler(name: str, budget: float) -> None:
    cfg = compose_train([f"sampler={name}", f"sampler.budget={budget}", "logger=none"])
    with pytest.raises(ConfigError, match=r"sampler\.budget=.*\(0, 1\]"):
        validate(cfg)


def test_static_choice_equals_a_brute_force_ranking() -> None:
    n, budget, seed = 12, 0.25, 3
    lam = np.array([0.1, np.inf, 0.7, 0.3, 0.0, 1.9, 0.05, np.inf, 0.45, 1.2, 0.9, 0.22])
    sampler = SpacedRepetitionSampler(n, seed, lam=lam, budget=budget)
    last = [-1] * n
    for epoch in range(8):
        warmup = epoch < 1
        order = sampler.order(epoch, warmup)
        if warmup:
            expected = set(range(n))
        else:
            # never-learned first, then lowest predicted retention (distinct: no ties to break)
            def key(i: int, t: int = epoch) -> tuple:
                never = lam[i] == np.inf
                return (not never, 0.0 if never else float(np.exp(-lam[i] * (t - last[i]))))
            ranked = sorted(range(n), key=key)
            cut = budget_count(budget, n)
            assert key(ranked[cut - 1]) < key(ranked[cut])  # no tie at the cut
            expected = set(ranked[:cut])
        assert set(order.tolist()) == expected, epoch
        for i in order:
            last[i] = epoch


def test_static_ties_are_broken_randomly_and_reproducibly() -> None:
    lam = np.zeros(100)  # all unforgettable: R = 1 for all, a uniform fill
    a = SpacedRepetitionSampler(100, 0, lam=lam, budget=0.3).order(2, False)
    b = SpacedRepetitionSampler(100, 0, lam=lam, budget=0.3).order(2, False)
    c = SpacedRepetitionSampler(100, 1, lam=lam, budget=0.3).order(2, False)
    np.testing.assert_array_equal(a, b)
    assert set(a.tolist()) != set(c.tolist()) and set(a.tolist()) != set(range(30))


@pytest.mark.parametrize("tracking", ["eval", "train"])
def test_online_lam_equals_fit_decay_on_the_partial_record(
    tracking: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    fitted = []

    def counted(traces: np.ndarray, mask: np.ndarray):
        fitted.append(len(traces))
        return fit_decay(traces, mask)

    monkeypatch.setattr(samplers, "fit_decay", counted)
    n, warmup, epochs = 2000, 1, 12
    rng = np.random.default_rng(5)
    correct = rng.random((epochs, n)) < np.linspace(0.2, 0.95, n)
    observed = rng.random((epochs, n)) < 0.85
    sampler = OnlineSpacedRepetitionSampler(n, 0, budget=0.5)
    for epoch in range(epochs):
        order = sampler.order(epoch, epoch < warmup)
        if tracking == "train":
            observed[epoch] = False
            observed[epoch, order] = True
        sampler.observe(epoch, correct, observed)
        if epoch < warmup:
            continue
        c, o = correct[warmup : epoch + 1], observed[warmup : epoch + 1]
        expected = fit_decay(*retention_traces(c, o)).lam
        never = never_learned(c, o)
        expected = np.where(never, np.inf, np.where(forgetting_events(c, o) == 0, 0.0, expected))
        np.testing.assert_array_equal(sampler.lam, expected, err_msg=f"epoch {epoch}")
    assert np.isfinite(sampler.lam).any() and (sampler.lam > 0).any() and never.any()
    # samples with the same episodes share one fit: fewer fits than samples whose lam changed
    assert 0 < sum(fitted) < (epochs - warmup) * (forgetting_events(c, o) > 0).sum() / 4


def test_online_samples_without_an_estimate_are_due_first() -> None:
    sampler = OnlineSpacedRepetitionSampler(10, 0, budget=0.3)
    correct, observed = np.ones((3, 10), bool), np.ones((3, 10), bool)
    sampler.order(0, True)
    sampler.observe(0, correct, observed)  # warmup: ignored
    sampler.order(1, False)
    observed[1, [2, 5, 8]] = False
    sampler.observe(1, correct, observed)
    assert set(sampler.order(2, False).tolist()) == {2, 5, 8}


def test_leitner_deck_moves_on_a_scripted_sequence() -> None:
    # 4 samples, budget 1: all presented. Correctness per fine-tuning epoch:
    script = np.array([[1, 0, 1, 1],
                       [1, 1, 0, 1],
                       [1, 1, 1, 0],
                       [0, 1, 1, 1]], bool)
    decks = [[1, 0, 1, 1],   # correct -> up; incorrect, never correct -> stays 0
             [2, 1, 0, 2],   # sample 2 forgot -> deck 0
             [3, 2, 1, 0],   # sample 3 forgot -> deck 0
             [0, 3, 2, 1]]   # sample 0 forgot
    sampler = LeitnerSampler(4, 0, budget=1.0, decks=3)
    correct = np.concatenate([np.zeros((1, 4), bool), script])
    observed = np.ones_like(correct)
    sampler.order(0, True)
    sampler.observe(0, correct, observed)  # warmup: no moves
    assert sampler.deck.tolist() == [0, 0, 0, 0]
    for t, deck in enumerate(decks, start=1):
        sampler.order(t, False)
        sampler.observe(t, correct, observed)
        assert sampler.deck.tolist() == [min(d, 2) for d in deck], t


def test_leitner_reviews_due_decks_first_and_promotes_only_the_presented() -> None:
    sampler = LeitnerSampler(8, 0, budget=0.5, decks=4)
    sampler.order(0, True)
    sampler.deck[:] = [0, 0, 1, 1, 2, 2, 3, 3]
    sampler.last_presented[:] = 0
    # epoch 2: overdue (2-0)/2^d = 2, 2, 1, 1, .5, .5, .25, .25 -> decks 0 and 1 are due
    order = sampler.order(2, False)
    assert set(order.tolist()) == {0, 1, 2, 3}
    sampler.observe(2, np.ones((3, 8), bool), np.ones((3, 8), bool))
    assert sampler.deck.tolist() == [1, 1, 2, 2, 2, 2, 3, 3]


@pytest.mark.parametrize("name", SAMPLERS)
def test_state_dict_round_trip_continues_identically(name: str) -> None:
    n, rng = 200, np.random.default_rng(9)
    correct, observed = rng.random((8, n)) < 0.5, rng.random((8, n)) < 0.9
    a, b = make(name, n, 0.3), make(name, n, 0.3)
    for epoch in range(4):
        a.order(epoch, epoch < 1)
        a.observe(epoch, correct, observed)
    a.order(4, False)
    b.load_state_dict(a.state_dict())  # mid-epoch: chosen, not yet observed
    for epoch in range(4, 8):
        if epoch > 4:
            np.testing.assert_array_equal(a.order(epoch, False), b.order(epoch, False))
        a.observe(epoch, correct, observed)
        b.observe(epoch, correct, observed)
    for key, value in a.state_dict().items():
        np.testing.assert_equal(b.state_dict()[key], value, err_msg=key)


def _record(path: Path, keys: list[str], dataset: str = "digits", **meta) -> Path:
    n, e = len(keys), 4
    rng = np.random.default_rng(0)
    arrays = {name: np.zeros((e, n), np.float32) for name in PER_EPOCH}
    arrays.update(correct=rng.random((e, n)) < 0.7, observed=np.ones((e, n), bool),
                  presented=np.ones((e, n), bool), pred=np.zeros((e, n), np.int64))
    Dynamics(sample_keys=np.array(keys), labels=np.zeros(n, np.int64),
             warmup_loss=np.zeros(n, np.float32), **arrays,
             meta={"dataset": dataset, "arch": "resnet18", "sampler": "random", "seed": 0,
                   "warmup_epochs": 1, **meta}).save(path / "dynamics")
    return path


def test_reference_lam_is_aligned_by_sample_key(tmp_path: Path) -> None:
    keys = [f"k{i}" for i in range(30)]
    ref = _record(tmp_path / "exp" / "digits" / "resnet18" / "random" / "seed0", keys)
    run_dir = tmp_path / "exp" / "digits" / "resnet18" / "spaced_repetition" / "seed0"
    lam = reference_decay("auto", run_dir, np.array(keys), "digits", "resnet18", 0)
    shuffled = np.array(keys)[::-1]
    again = reference_decay(str(ref), run_dir, shuffled, "digits", "resnet18", 0)
    np.testing.assert_array_equal(again, lam[::-1])


def test_reference_errors_name_both_runs(tmp_path: Path) -> None:
    keys = [f"k{i}" for i in range(30)]
    run_dir = tmp_path / "exp" / "digits" / "resnet18" / "spaced_repetition" / "seed0"
    with pytest.raises(ConfigError, match=r"no finished reference run.*random.*train it first"):
        reference_decay("auto", run_dir, np.array(keys), "digits", "resnet18", 0)
    other = _record(tmp_path / "other", keys, dataset="cub")
    with pytest.raises(ConfigError, match=r"other.*'cub'.*spaced_repetition/seed0.*'digits'"):
        reference_decay(str(other), run_dir, np.array(keys), "digits", "resnet18", 0)
    fewer = _record(tmp_path / "fewer", keys[:-1])
    with pytest.raises(ConfigError, match=r"fewer.*different sample set.*seed0"):
        reference_decay(str(fewer), run_dir, np.array(keys), "digits", "resnet18", 0)
    with pytest.raises(ConfigError, match="neither a run dir"):
        reference_decay("no/such/dir", run_dir, np.array(keys), "digits", "resnet18", 0)


def test_reference_artifact_fails_clearly_offline(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"W&B artifact.*offline.*local run dir"):
        reference_decay("me/forgetting/dynamics-x:v0", tmp_path / "r" / "seed0",
                        np.array(["a"]), "digits", "resnet18", 0)
