"""Scores, top-q sets, overlaps, alignment, rank agreement, intervals and class tables."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps

from forgetting.dynamics import Dynamics
from forgetting.retention import Summary, half_life
from forgetting.stats import (
    align,
    bootstrap_ci,
    class_table,
    compare_distributions,
    confusion_pairs,
    forgetting_score,
    jaccard,
    jaccard_matrix,
    jaccard_null,
    most_forgotten,
    overlap_pvalue,
    paired_comparison,
    rank_agreement,
    rank_agreement_matrix,
    top_q,
)


def make_summary(events, lam, labels=None, keys=None) -> Summary:
    """A Summary with the given events and lambda; the rest follows from them."""
    events, lam = np.asarray(events), np.asarray(lam, dtype=float)
    n = len(events)
    never = lam == np.inf
    nan = np.full(n, np.nan)
    return Summary(
        sample_keys=np.asarray(keys if keys is not None else [f"k{i}" for i in range(n)]),
        labels=np.asarray(labels if labels is not None else np.zeros(n, int)),
        forgetting_events=events,
        learning_events=events + ~never,
        first_learned=np.where(never, -1, 0),
        never_learned=never,
        unforgettable=~never & (events == 0),
        lam=lam,
        floor=nan,
        r2=nan,
        sse=nan,
        aic=nan,
        n_points=np.full(n, 5),
        half_life=half_life(lam),
        final_correct=~never,
        mean_prob=nan,
        std_prob=nan,
        el2n=nan,
        warmup_loss=np.zeros(n, np.float32),
    )


# ---------------------------------------------------------------- scores and top-q


def test_forgetting_scores() -> None:
    s = make_summary([2, 0, 0, 5], [0.5, np.inf, 0.0, 1.0])
    assert forgetting_score(s).tolist() == [2, np.inf, 0, 5]
    assert forgetting_score(s, by="decay").tolist() == [0.5, np.inf, 0.0, 1.0]
    with pytest.raises(ValueError, match="by must be one of"):
        forgetting_score(s, by="loss")


def test_top_q_breaks_ties_by_the_secondary_key_then_by_seed() -> None:
    score = np.array([5, 3, 3, 3, 1, 3])
    tiebreak = np.array([0, 0.1, 0.5, 0.5, 0, 0.2])
    # round(0.5 * 6) = 3: the 5, then the two 3s with lambda 0.5 (samples 2 and 3)
    assert sorted(top_q(score, 0.5, tiebreak=tiebreak).tolist()) == [0, 2, 3]
    # round(2) = 2: the boundary now splits the lambda-0.5 tie, settled by the seed
    picks = {
        tuple(sorted(top_q(score, 1 / 3 + 1e-12, seed=s, tiebreak=tiebreak))) for s in range(20)
    }
    assert picks == {(0, 2), (0, 3)}
    a = top_q(score, 1 / 3 + 1e-12, seed=4, tiebreak=tiebreak)
    assert np.array_equal(a, top_q(score, 1 / 3 + 1e-12, seed=4, tiebreak=tiebreak))
    assert len(top_q(np.zeros(25), 0.1)) == 3  # round(2.5) = 3


def test_most_forgotten_puts_never_learned_first_then_lambda() -> None:
    s = make_summary([3, 0, 3, 1, 3], [0.2, np.inf, 0.9, 0.1, 0.5])
    assert most_forgotten(s, q=0.6).tolist() == [1, 2, 4]
    assert most_forgotten(s, q=0.4, by="decay").tolist() == [1, 2]


def test_top_q_ranks_nan_last_and_checks_arguments() -> None:
    assert top_q(np.array([np.nan, 1.0, 0.0]), 2 / 3).tolist() == [1, 2]
    for q in (0.0, 1.5, -0.1):
        with pytest.raises(ValueError, match=r"q must lie in \(0, 1\]"):
            top_q(np.ones(4), q)
    with pytest.raises(ValueError, match="tiebreak"):
        top_q(np.ones(4), 0.5, tiebreak=np.ones(3))
    with pytest.raises(ValueError, match="score"):
        top_q(np.ones((2, 2)), 0.5)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.integers(0, 4), min_size=1, max_size=60),
    st.floats(0.001, 1.0),
    st.integers(0, 2**32 - 1),
)
def test_top_q_size_is_exact_and_takes_the_highest(scores, q, seed) -> None:
    score = np.array(scores, dtype=float)
    idx = top_q(score, q, seed=seed)
    assert len(idx) == int(math.floor(q * len(score) + 0.5))
    assert len(set(idx.tolist())) == len(idx)
    rest = np.setdiff1d(np.arange(len(score)), idx)
    if len(idx) and len(rest):
        assert score[idx].min() >= score[rest].max()


# ---------------------------------------------------------------- overlaps


def test_jaccard_by_hand() -> None:
    assert jaccard([1, 2, 3], [2, 3, 4]) == 0.5
    assert jaccard(np.array([True, False, True]), np.array([True, True, False])) == 1 / 3
    assert jaccard([1, 1, 2], [2, 1]) == 1.0
    assert math.isnan(jaccard([], []))
    assert jaccard_null(0.1) == pytest.approx(0.1 / 1.9)
    with pytest.raises(ValueError, match="q must lie"):
        jaccard_null(0)
    m = jaccard_matrix([[1, 2], [2, 3], [1, 2]])
    np.testing.assert_allclose(m, [[1, 1 / 3, 1], [1 / 3, 1, 1 / 3], [1, 1 / 3, 1]])


@settings(max_examples=200, deadline=None)
@given(st.sets(st.integers(0, 30)), st.sets(st.integers(0, 30)))
def test_jaccard_is_symmetric_and_bounded(a, b) -> None:
    a, b = sorted(a), sorted(b)
    j = jaccard(a, b)
    if a or b:
        assert 0 <= j <= 1 and j == jaccard(b, a)
        assert (j == 1) == (a == b)


def test_planted_top_q_overlap_gives_its_jaccard() -> None:
    rng = np.random.default_rng(0)
    n, q, shared = 1000, 0.1, 40
    order = rng.permutation(n)
    set_a = order[:100]
    set_b = np.concatenate([order[:shared], order[100 : 100 + 100 - shared]])
    score_a, score_b = rng.random(n), rng.random(n)
    score_a[set_a] += 10
    score_b[set_b] += 10
    a, b = top_q(score_a, q), top_q(score_b, q)
    assert set(a) == set(set_a) and set(b) == set(set_b)
    assert jaccard(a, b) == pytest.approx(shared / (200 - shared))
    assert overlap_pvalue(n, 100, 100, shared) < 1e-10


def test_random_top_q_sets_meet_the_null_expectation() -> None:
    rng = np.random.default_rng(1)
    n, q = 1000, 0.1
    values = [jaccard(top_q(rng.random(n), q), top_q(rng.random(n), q)) for _ in range(400)]
    assert np.mean(values) == pytest.approx(jaccard_null(q), abs=0.004)


def test_overlap_pvalue_is_the_exact_hypergeometric_tail() -> None:
    n, a, b = 12, 5, 4
    total = math.comb(n, b)
    for k in range(0, 5):
        tail = sum(math.comb(a, j) * math.comb(n - a, b - j) for j in range(k, b + 1)) / total
        assert overlap_pvalue(n, a, b, k) == pytest.approx(tail, rel=1e-12)
    assert overlap_pvalue(n, a, b, 0) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="overlap"):
        overlap_pvalue(n, a, b, 5)
    with pytest.raises(ValueError, match="set sizes"):
        overlap_pvalue(n, 13, b, 1)


# ---------------------------------------------------------------- alignment


def make_dynamics(keys: list[str], labels: list[int] | None = None) -> Dynamics:
    n, e = len(keys), 4
    rng = np.random.default_rng(len(keys))
    correct = rng.random((e, n)) < 0.5
    floats = {k: rng.random((e, n)).astype(np.float32) for k in ("loss", "prob", "margin", "el2n")}
    return Dynamics(
        sample_keys=np.asarray(keys),
        labels=np.asarray(labels if labels is not None else np.arange(n) % 2),
        correct=correct,
        observed=np.ones((e, n), bool),
        pred=rng.integers(0, 2, (e, n)),
        presented=np.ones((e, n), bool),
        warmup_loss=np.arange(n, dtype=np.float32),
        meta={"warmup_epochs": 0},
        **floats,
    )


def test_align_reorders_runs_by_sample_key() -> None:
    a = make_dynamics(["x", "y", "z"])
    b = make_dynamics(["z", "x", "y"])
    a2, b2 = align([a, b])
    assert b2.sample_keys.tolist() == ["x", "y", "z"]
    np.testing.assert_array_equal(b2.correct, b.correct[:, [1, 2, 0]])
    np.testing.assert_array_equal(b2.warmup_loss, [1, 2, 0])
    np.testing.assert_array_equal(a2.correct, a.correct)
    s = make_summary([1, 2, 3], [0.1, 0.2, 0.3], keys=["z", "x", "y"])
    (s2,) = align([s])
    assert s2.lam.tolist() == [0.1, 0.2, 0.3]
    assert align([a, s])[1].lam.tolist() == [0.2, 0.3, 0.1]


def test_align_refuses_different_sample_sets_unless_intersecting() -> None:
    a = make_dynamics(["x", "y", "z"])
    b = make_dynamics(["y", "w", "x"])
    with pytest.raises(ValueError, match="intersect=True"):
        align([a, b])
    a2, b2 = align([a, b], intersect=True)
    assert a2.sample_keys.tolist() == b2.sample_keys.tolist() == ["x", "y"]
    np.testing.assert_array_equal(b2.correct, b.correct[:, [2, 0]])
    with pytest.raises(ValueError, match="duplicate"):
        align([make_dynamics(["x", "x"])])
    with pytest.raises(ValueError, match="at least one"):
        align([])


# ---------------------------------------------------------------- rank agreement


def test_rank_agreement_matches_scipy_and_skips_nan() -> None:
    rng = np.random.default_rng(2)
    a, b = rng.random(50), rng.random(50)
    rho, p = rank_agreement(a, b)
    ref = sps.spearmanr(a, b)
    assert rho == pytest.approx(ref.statistic) and p == pytest.approx(ref.pvalue)
    a[3], b[7] = np.nan, np.nan
    keep = np.ones(50, bool)
    keep[[3, 7]] = False
    assert rank_agreement(a, b)[0] == pytest.approx(sps.spearmanr(a[keep], b[keep]).statistic)
    assert rank_agreement([1, 2, np.inf], [0.1, 0.2, 0.3])[0] == pytest.approx(1.0)
    assert all(math.isnan(v) for v in rank_agreement([1, 1, 1, 1], [1, 2, 3, 4]))
    with pytest.raises(ValueError, match="scores"):
        rank_agreement([1, 2], [1, 2, 3])


def test_rank_agreement_matrix() -> None:
    x = np.arange(10.0)
    rho, p = rank_agreement_matrix([x, x**2, -x])
    np.testing.assert_allclose(rho, [[1, 1, -1], [1, 1, -1], [-1, -1, 1]])
    assert np.array_equal(p, p.T) and (np.diag(p) == 0).all()


# ---------------------------------------------------------------- intervals and tests


def test_bootstrap_ci() -> None:
    rng = np.random.default_rng(3)
    values = rng.normal(2.0, 1.0, 400)
    ci = bootstrap_ci(np.append(values, np.nan), n=2000, seed=1)
    assert ci.estimate == pytest.approx(values.mean())
    assert ci.low < ci.estimate < ci.high
    assert ci.high - ci.low == pytest.approx(2 * 1.96 / 20, rel=0.15)  # 2 z sd / sqrt(n)
    assert ci == bootstrap_ci(values, n=2000, seed=1)
    med = bootstrap_ci(values, stat=np.median, n=500, seed=1)
    assert med.estimate == pytest.approx(np.median(values))
    assert all(math.isnan(v) for v in bootstrap_ci([np.nan]))
    with pytest.raises(ValueError, match="level"):
        bootstrap_ci(values, level=1.0)


def test_compare_distributions_is_mann_whitney() -> None:
    a, b = [1.0, 2.0, 3.0, np.nan], [2.0, 3.0, 4.0, 5.0]
    res = compare_distributions(a, b)
    ref = sps.mannwhitneyu([1, 2, 3], b, alternative="two-sided")
    assert res.u == ref.statistic and res.p == pytest.approx(ref.pvalue)
    assert res.effect == pytest.approx(2 * ref.statistic / 12 - 1) and res.effect < 0
    assert compare_distributions([5, 6], [1, 2]).effect == 1.0


def test_paired_comparison_by_hand() -> None:
    x, y = np.array([3.0, 5.0, 4.0, 6.0, 7.0]), np.array([2.0, 3.0, 4.5, 3.0, 5.0])
    d = x - y  # 1, 2, -0.5, 3, 2
    res = paired_comparison(x, y)
    half = sps.t.ppf(0.975, 4) * d.std(ddof=1) / math.sqrt(5)
    assert res.mean_diff == pytest.approx(1.5)
    assert (res.low, res.high) == pytest.approx((1.5 - half, 1.5 + half))
    assert res.p_wilcoxon == pytest.approx(sps.wilcoxon(d).pvalue) and res.n == 5
    assert paired_comparison([1.0, 2.0], [1.0, 2.0]).p_wilcoxon == 1.0
    assert paired_comparison([1.0, np.nan, 3.0], [0.0, 1.0, 1.0]).n == 2
    with pytest.raises(ValueError, match="x and y"):
        paired_comparison([1.0], [1.0, 2.0])


# ---------------------------------------------------------------- class level


def test_class_table_by_hand() -> None:
    s = make_summary(
        events=[2, 0, 4, 0, 1, 0],
        lam=[0.5, 0.0, np.inf, np.inf, 1.5, 0.0],
        labels=[0, 0, 0, 2, 2, 2],
    )
    t = class_table(s, class_names=["gull", "tern", "wren"])
    assert t.name.tolist() == ["gull", "tern", "wren"]
    assert t.n.tolist() == [3, 0, 3]
    np.testing.assert_allclose(t.mean_events, [2, np.nan, 1 / 3])
    np.testing.assert_allclose(t.mean_lam, [0.25, np.nan, 0.75])  # never-learned excluded
    np.testing.assert_allclose(t.frac_unforgettable, [1 / 3, np.nan, 1 / 3])
    np.testing.assert_allclose(t.frac_never_learned, [1 / 3, np.nan, 1 / 3])
    frame = t.to_frame()
    assert frame.shape == (3, 7) and frame.loc[2, "name"] == "wren"
    assert class_table(s).name.tolist() == ["0", "1", "2"]
    assert class_table(s, labels=np.zeros(6, int)).n.tolist() == [6]
    with pytest.raises(ValueError, match="labels"):
        class_table(s, labels=[0, 1])


def test_confusion_pairs_count_predictions_at_forgetting_epochs() -> None:
    d = make_dynamics(["a", "b", "c"], labels=[0, 0, 1])
    correct = np.array([[1, 1, 1], [0, 1, 0], [1, 0, 1], [0, 1, 1]], bool)
    pred = np.array([[0, 0, 1], [2, 0, 0], [0, 2, 1], [2, 0, 1]])
    d = dataclasses.replace(d, correct=correct, pred=pred, meta={"class_names": ["gull", "tern"]})
    pairs = confusion_pairs(d)
    assert list(zip(pairs.true, pairs.pred, pairs.count, strict=True)) == [(0, 2, 3), (1, 0, 1)]
    assert pairs.true_name.tolist() == ["gull", "tern"]
    assert pairs.pred_name.tolist() == ["2", "gull"]
    frame = pairs.to_frame()
    assert frame["count"].tolist() == [3, 1]
    # after two warmup epochs only a's forgetting at epoch 3 is left (b's crosses the boundary)
    warm = confusion_pairs(dataclasses.replace(d, meta={"warmup_epochs": 2}))
    assert list(zip(warm.true, warm.pred, warm.count, strict=True)) == [(0, 2, 1)]
    assert len(confusion_pairs(dataclasses.replace(d, meta={"warmup_epochs": 2}), True).count) == 2
