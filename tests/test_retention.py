"""Forgetting events, retention traces, decay fits and the per-sample summary (DESIGN 5)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.optimize import least_squares
from scipy.stats import spearmanr

from forgetting.dynamics import Dynamics
from forgetting.retention import (
    MODELS,
    TRACE_KINDS,
    first_learned,
    fit_decay,
    forgetting_events,
    half_life,
    learning_events,
    never_learned,
    pooled_survival,
    retention_traces,
    summarise,
    transitions,
    unforgettable,
)

NAN = np.nan

# Five samples (columns) over six epochs (rows). Entries at unobserved epochs are set to the
# opposite of what would make a difference, so a test passes only if they are ignored.
#   s0 never learned; s1 unforgettable from epoch 1; s2 flips 1,0,1,0,1,1;
#   s3 observed at 0,2,4,5 only (1,0,1,1); s4 observed from epoch 2 (0,1,0,0).
CORRECT = np.array(
    [
        [0, 0, 1, 1, 1],
        [0, 1, 0, 0, 1],
        [0, 1, 1, 0, 0],
        [0, 1, 0, 1, 1],
        [0, 1, 1, 1, 0],
        [0, 1, 1, 1, 0],
    ],
    dtype=bool,
)
OBSERVED = np.array(
    [
        [1, 1, 1, 1, 0],
        [1, 1, 1, 0, 0],
        [1, 1, 1, 1, 1],
        [1, 1, 1, 0, 1],
        [1, 1, 1, 1, 1],
        [1, 1, 1, 1, 1],
    ],
    dtype=bool,
)


def record_strategy(max_epochs: int = 12, max_samples: int = 8):
    """(correct, observed) pairs of one random shape."""
    shape = st.tuples(st.integers(1, max_epochs), st.integers(1, max_samples))
    return shape.flatmap(
        lambda s: st.tuples(arrays(bool, s), arrays(bool, s)),
    )


def reference_events(correct: np.ndarray, observed: np.ndarray) -> tuple[list, list]:
    """Forgetting and learning events by walking each sample's observations (test oracle)."""
    forgets, learns = [], []
    for i in range(correct.shape[1]):
        seq = correct[observed[:, i], i]
        prev = np.concatenate([[False], seq[:-1]])
        forgets.append(int((prev & ~seq).sum()))
        learns.append(int((~prev & seq).sum()))
    return forgets, learns


# ---------------------------------------------------------------- events


def test_events_on_hand_worked_record() -> None:
    assert forgetting_events(CORRECT, OBSERVED).tolist() == [0, 0, 2, 1, 1]
    assert learning_events(CORRECT, OBSERVED).tolist() == [0, 1, 3, 2, 1]
    assert first_learned(CORRECT, OBSERVED).tolist() == [-1, 1, 0, 0, 3]
    assert never_learned(CORRECT, OBSERVED).tolist() == [True, False, False, False, False]
    assert unforgettable(CORRECT, OBSERVED).tolist() == [False, True, False, False, False]


def test_transitions_mark_the_epoch_of_each_event() -> None:
    forget, learn = transitions(CORRECT, OBSERVED)
    assert np.flatnonzero(forget[:, 2]).tolist() == [1, 3]
    assert np.flatnonzero(forget[:, 3]).tolist() == [2]  # epoch 1 is unobserved
    assert np.flatnonzero(learn[:, 3]).tolist() == [0, 4]
    assert np.flatnonzero(learn[:, 4]).tolist() == [3]


def test_observed_defaults_to_all_epochs() -> None:
    assert forgetting_events(CORRECT).tolist() == [0, 0, 2, 1, 2]
    assert first_learned(CORRECT).tolist() == [-1, 1, 0, 0, 0]


@pytest.mark.parametrize(
    ("correct", "observed", "match"),
    [
        (np.zeros(5, bool), None, "correct"),
        (np.zeros((3, 4), bool), np.ones((3, 5), bool), "observed"),
    ],
)
def test_bad_shapes_are_named(correct, observed, match) -> None:
    with pytest.raises(ValueError, match=match):
        forgetting_events(correct, observed)


@settings(max_examples=150, deadline=None)
@given(record_strategy())
def test_events_match_a_per_sample_walk(record) -> None:
    correct, observed = record
    forgets, learns = reference_events(correct, observed)
    f = forgetting_events(correct, observed)
    assert f.tolist() == forgets
    assert learning_events(correct, observed).tolist() == learns
    assert (f <= correct.shape[0] // 2).all()
    assert ((f == np.array(learns)) | (f == np.array(learns) - 1)).all()


@settings(max_examples=100, deadline=None)
@given(record_strategy())
def test_unobserved_entries_are_ignored(record) -> None:
    correct, observed = record
    flipped = np.where(observed, correct, ~correct)
    for kind in TRACE_KINDS:
        a, b = (
            retention_traces(correct, observed, kind=kind),
            retention_traces(flipped, observed, kind=kind),
        )
        assert np.array_equal(a[1], b[1]) and np.allclose(a[0], b[0], equal_nan=True)
    assert np.array_equal(
        forgetting_events(correct, observed), forgetting_events(flipped, observed)
    )


# ---------------------------------------------------------------- traces


def test_survival_traces_by_hand() -> None:
    traces, mask = retention_traces(CORRECT, OBSERVED, kind="survival")
    expected = np.array(
        [
            [NAN] * 6,
            [1, 1, 1, 1, 1, NAN],  # one episode, censored at lag 4
            [1, 1 / 3, NAN, NAN, NAN, NAN],  # episodes end at lag 1: forgotten, forgotten, censored
            [1, 1, 0, NAN, NAN, NAN],  # forgotten at lag 2 (next observation); then censored at 1
            [1, 0, NAN, NAN, NAN, NAN],
        ]
    )
    np.testing.assert_allclose(traces, expected)
    assert np.array_equal(mask, ~np.isnan(expected))


def test_trace_dtype() -> None:
    single, _ = retention_traces(CORRECT, OBSERVED)
    double, _ = retention_traces(CORRECT, OBSERVED, dtype=np.float64)
    assert single.dtype == np.float32 and double.dtype == np.float64
    assert double[2, 1] == pytest.approx(1 / 3, rel=1e-15)
    np.testing.assert_allclose(single, double, rtol=1e-7)


def test_raw_and_running_traces_by_hand() -> None:
    raw, raw_mask = retention_traces(CORRECT, OBSERVED, kind="raw")
    np.testing.assert_array_equal(
        raw,
        [
            [NAN] * 6,
            [1, 1, 1, 1, 1, NAN],
            [1, 0, 1, 0, 1, 1],
            [1, NAN, 0, NAN, 1, 1],
            [1, 0, 0, NAN, NAN, NAN],
        ],
    )
    running, running_mask = retention_traces(CORRECT, OBSERVED, kind="running")
    np.testing.assert_allclose(running[2], [1, 1 / 2, 2 / 3, 2 / 4, 3 / 5, 4 / 6])
    np.testing.assert_allclose(running[3], [1, NAN, 1 / 2, NAN, 2 / 3, 3 / 4])
    np.testing.assert_allclose(running[4], [1, 1 / 2, 1 / 3, NAN, NAN, NAN])
    assert np.array_equal(raw_mask, running_mask)


def test_max_lag_truncates_and_censors() -> None:
    traces, mask = retention_traces(CORRECT, OBSERVED, max_lag=1)
    assert traces.shape == (5, 2)
    np.testing.assert_allclose(traces[3], [1, 1])  # the lag-2 forgetting lies beyond the window
    np.testing.assert_allclose(traces[2], [1, 1 / 3])


def test_trace_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="kind must be one of"):
        retention_traces(CORRECT, kind="weird")
    with pytest.raises(ValueError, match="max_lag"):
        retention_traces(CORRECT, max_lag=-1)


@pytest.mark.parametrize("chunk_size", [1, 2, 4096])
def test_chunking_does_not_change_traces(chunk_size: int) -> None:
    rng = np.random.default_rng(3)
    correct, observed = rng.random((15, 37)) < 0.6, rng.random((15, 37)) < 0.8
    for kind in TRACE_KINDS:
        a = retention_traces(correct, observed, kind=kind, chunk_size=chunk_size, workers=2)
        b = retention_traces(correct, observed, kind=kind, chunk_size=37, workers=1)
        np.testing.assert_array_equal(a[0], b[0])


@settings(max_examples=150, deadline=None)
@given(record_strategy())
def test_survival_traces_are_kaplan_meier_curves(record) -> None:
    correct, observed = record
    traces, mask = retention_traces(correct, observed)
    learned = ~never_learned(correct, observed)
    assert np.array_equal(mask[:, 0], learned)
    assert (traces[learned, 0] == 1).all()
    # points form a prefix of the lags, values stay in [0, 1] and never increase
    assert (mask[:, 1:] <= mask[:, :-1]).all()
    vals = traces[mask]
    assert ((vals >= 0) & (vals <= 1)).all()
    steps = np.diff(traces, axis=1)
    assert (steps[~np.isnan(steps)] <= 1e-12).all()
    # an unforgettable sample's curve stays at 1
    solid = unforgettable(correct, observed)
    assert (np.nan_to_num(traces[solid], nan=1.0) == 1).all()


@settings(max_examples=100, deadline=None)
@given(record_strategy())
def test_raw_and_running_traces_start_at_learning(record) -> None:
    correct, observed = record
    learned = first_learned(correct, observed)
    for kind in ("raw", "running"):
        traces, mask = retention_traces(correct, observed, kind=kind)
        assert np.array_equal(mask[:, 0], learned >= 0)
        assert (traces[learned >= 0, 0] == 1).all()
        assert ((traces[mask] >= 0) & (traces[mask] <= 1)).all()
        assert mask.sum(1).tolist() == [
            int(observed[first:, i].sum()) if first >= 0 else 0 for i, first in enumerate(learned)
        ]


# ---------------------------------------------------------------- decay fits

K = np.arange(12.0)


@pytest.mark.parametrize(
    ("model", "trace", "lam", "floor"),
    [
        ("exp", np.exp(-0.3 * K), 0.3, NAN),
        ("exp_floor", 0.4 + 0.6 * np.exp(-0.5 * K), 0.5, 0.4),
        ("power", (1 + K) ** -0.7, 0.7, NAN),
    ],
)
def test_exact_curves_are_recovered(model, trace, lam, floor) -> None:
    fit = fit_decay(trace[None], model=model)
    np.testing.assert_allclose(fit.lam, [lam], rtol=1e-7)
    np.testing.assert_allclose(fit.floor, [floor], rtol=1e-7)
    assert fit.sse[0] < 1e-20 and fit.r2[0] == pytest.approx(1.0)
    assert fit.n_points[0] == 12


def test_fit_conventions() -> None:
    traces = np.array(
        [
            [1, 1, 1, 1, 1],  # flat: rate 0, R^2 undefined
            [1, 0.5, NAN, NAN, NAN],  # two points: exact, but too few for R^2
            [NAN] * 5,  # empty: a never-learned sample
            [1, 0, 0, 0, 0],  # forgotten at once: the rate bound
            [1, 0.5, 0.6, 0.1, 0.2],
        ]
    )
    fit = fit_decay(traces, max_rate=8.0)
    assert fit.lam[0] == 0 and np.isnan(fit.r2[0]) and fit.sse[0] == 0
    assert fit.lam[1] == pytest.approx(math.log(2)) and np.isnan(fit.r2[1])
    assert fit.lam[2] == np.inf and fit.n_points[2] == 0
    assert np.isnan([fit.sse[2], fit.r2[2], fit.aic[2]]).all()
    assert fit.lam[3] == 8.0
    assert fit.n_points.tolist() == [5, 2, 0, 5, 5]
    # R^2 and AIC by their definitions
    pred = np.exp(-fit.lam[4] * np.arange(5))
    sse = ((traces[4] - pred) ** 2).sum()
    assert fit.sse[4] == pytest.approx(sse)
    assert fit.r2[4] == pytest.approx(1 - sse / ((traces[4] - traces[4].mean()) ** 2).sum())
    assert fit.aic[4] == pytest.approx(5 * math.log(sse / 5 + 1e-12) + 2)
    assert fit.aic[0] == pytest.approx(5 * math.log(1e-12) + 2)
    assert np.isnan(fit_decay(traces[4:], min_points=6).r2[0])


def test_fit_uses_the_mask_not_the_values_behind_it() -> None:
    traces = np.array([[1, 0.9, 0.0, 0.7, 0.6]])
    mask = np.array([[True, True, False, True, True]])
    a = fit_decay(traces, mask)
    b = fit_decay(np.where(mask, traces, NAN))
    assert a.lam == pytest.approx(b.lam) and a.n_points[0] == 4


def test_exp_floor_parameters_stay_in_bounds() -> None:
    traces = np.array([[1, 1.0, 1.0, 0.9], [1, 0.0, 0.0, 0.0], [1, 0.2, 0.9, 0.95]])
    fit = fit_decay(traces, model="exp_floor")
    assert ((fit.floor >= 0) & (fit.floor <= 1)).all()
    assert ((fit.lam >= 0) & (fit.lam <= 10)).all()


def test_fit_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="model must be one of"):
        fit_decay(np.ones((2, 3)), model="hyperbolic")
    with pytest.raises(ValueError, match="mask"):
        fit_decay(np.ones((2, 3)), np.ones((2, 4), bool))
    with pytest.raises(ValueError, match="traces"):
        fit_decay(np.ones(3))
    with pytest.raises(ValueError, match="chunk_size"):
        fit_decay(np.ones((2, 3)), chunk_size=0)


def test_fit_is_independent_of_chunking_and_threads() -> None:
    traces, mask = random_traces(np.random.default_rng(5), n=40)
    for model in MODELS:
        a = fit_decay(traces, mask, model=model, chunk_size=7, workers=3)
        b = fit_decay(traces, mask, model=model, chunk_size=4096, workers=1)
        assert np.array_equal(a.n_points, b.n_points)
        for name in ("lam", "floor", "sse", "r2", "aic"):  # chunk widths change rounding only
            np.testing.assert_allclose(getattr(a, name), getattr(b, name), rtol=1e-6, atol=1e-12)


def test_half_life_conventions() -> None:
    rates = np.array([0.0, math.log(2), np.inf, NAN])
    np.testing.assert_array_equal(half_life(rates), [np.inf, 1.0, 0.0, NAN])
    np.testing.assert_allclose(half_life(np.array([1.0, 0.0]), "power"), [1.0, np.inf])
    assert fit_decay(np.exp(-0.2 * K)[None]).half_life[0] == pytest.approx(math.log(2) / 0.2)


# ---------------------------------------------------------------- oracle: scipy per sample


def scipy_fit(
    lags: np.ndarray, y: np.ndarray, model: str, max_rate: float, starts=(0.01, 0.3, 3.0)
) -> tuple[float, float]:
    """Best (SSE, rate) of scipy's bounded least squares from several starting rates."""
    tau = np.log1p(lags) if model == "power" else lags
    if model == "exp_floor":
        x0s = [[rate, 0.5] for rate in starts] + [[0.3, 0.0]]
        bounds = ([0, 0], [max_rate, 1])

        def residual(p):
            return p[1] + (1 - p[1]) * np.exp(-p[0] * tau) - y
    else:
        x0s, bounds = [[rate] for rate in starts], ([0], [max_rate])

        def residual(p):
            return np.exp(-p[0] * tau) - y

    tight = {"xtol": 1e-12, "ftol": 1e-12, "gtol": 1e-12, "method": "dogbox"}
    results = [least_squares(residual, x0, bounds=bounds, **tight) for x0 in x0s]
    best = min(results, key=lambda res: res.cost)
    return 2 * best.cost, float(best.x[0])


def rate_sensitivity(lags: np.ndarray, rate: float, floor: float, model: str) -> float:
    """Gauss-Newton curvature of the SSE in the rate (the floor profiled out for exp_floor)."""
    tau = np.log1p(lags) if model == "power" else lags
    decay = np.exp(-rate * tau)
    if model != "exp_floor":
        return float(((tau * decay) ** 2).sum())
    j_rate, j_floor = (1 - floor) * tau * decay, 1 - decay
    cross = j_rate @ j_floor
    return float(j_rate @ j_rate - (cross * cross / (j_floor @ j_floor) if cross else 0.0))


def random_traces(rng: np.random.Generator, n: int = 75, epochs: int = 30) -> tuple:
    """Survival, raw and running traces of simulated records plus noisy masked exp curves."""
    forget, learn = rng.uniform(0.01, 0.6, n), rng.uniform(0.05, 0.9, n)
    correct = np.zeros((epochs, n), bool)
    for t in range(epochs):
        u = rng.random(n)
        correct[t] = np.where(correct[t - 1], u > forget, u < learn) if t else u < learn
    observed = rng.random((epochs, n)) < 0.85
    parts = [retention_traces(correct, observed, kind=kind) for kind in TRACE_KINDS]
    lam = rng.uniform(0, 2, (n, 1))
    noisy = np.clip(np.exp(-lam * np.arange(epochs)) + rng.normal(0, 0.1, (n, epochs)), 0, 1)
    parts.append((noisy, rng.random((n, epochs)) < 0.7))
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


@pytest.mark.parametrize("model", MODELS)
def test_fits_match_scipy_per_sample(model: str) -> None:
    traces, mask = random_traces(np.random.default_rng(MODELS.index(model)))
    fit = fit_decay(traces, mask, model=model)
    compared = 0
    for i in np.flatnonzero(mask.any(1)):
        lags = np.flatnonzero(mask[i]).astype(float)
        sse, rate = scipy_fit(lags, traces[i, mask[i]], model, max_rate=10.0)
        assert fit.sse[i] <= sse + 1e-9, (i, fit.lam[i], rate)
        tol = max(1e-6, 1e-4 * rate)
        # Where both reach the same minimum, compare the rates if moving ours by `tol` is
        # visible to scipy's stopping rules (SSE change > 10 ftol SSE, gradient > 100 gtol).
        # On flatter minima (e.g. "forgotten at once": any large rate fits) the rate is not
        # determined by the data in double precision, and scipy stops anywhere on the plateau.
        same = abs(fit.sse[i] - sse) <= 1e-9
        curvature = rate_sensitivity(lags, fit.lam[i], fit.floor[i], model)
        sharp = curvature * tol**2 > 1e-11 * sse and curvature * tol > 1e-10
        if same and sharp:
            compared += 1
            assert abs(fit.lam[i] - rate) <= tol, (i, fit.lam[i], rate)
    assert compared >= 0.7 * mask.any(1).sum()  # flat and plateau traces are the rest


TWO_BASINS = {  # raw traces whose SSE has two local minima in the rate; the grid's best is
    # not in the lower one, so the second basin must be refined too
    "exp": [1, 0, NAN, 1, 0, 0, 0, 0, 0],
    "exp_floor": [1, NAN, 0, NAN, 0, 1, NAN, 1, 0, 1, 0, 0, 0, 0, 0, 0, NAN, NAN, 0, 0],
    "power": [1, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0],
}


@pytest.mark.parametrize("model", MODELS)
def test_the_lower_of_two_basins_is_found(model: str) -> None:
    trace = np.array(TWO_BASINS[model], dtype=float)
    lags = np.flatnonzero(~np.isnan(trace)).astype(float)
    fit = fit_decay(trace[None], model=model)
    best = min(
        scipy_fit(lags, trace[~np.isnan(trace)], model, max_rate=10.0, starts=[rate])[0]
        for rate in np.geomspace(1e-3, 9.0, 30)
    )
    assert fit.sse[0] <= best + 1e-9


# ---------------------------------------------------------------- planted truth


def test_planted_rates_are_recovered_from_noisy_traces() -> None:
    rng = np.random.default_rng(7)
    n, k = 2000, np.arange(40.0)
    lam = np.exp(rng.uniform(np.log(0.02), np.log(1.5), n))
    for model in MODELS:
        tau = np.log1p(k) if model == "power" else k
        floor = rng.uniform(0, 0.5, n) if model == "exp_floor" else np.zeros(n)
        clean = floor[:, None] + (1 - floor[:, None]) * np.exp(-lam[:, None] * tau)
        fit = fit_decay(clean + rng.normal(0, 0.03, clean.shape), model=model)
        assert spearmanr(lam, fit.lam).statistic >= 0.95, model


def test_planted_rates_are_recovered_from_simulated_training() -> None:
    """Correctness simulated with per-epoch forgetting probability 1 - exp(-lam)."""
    rng = np.random.default_rng(11)
    n, epochs = 3000, 100
    lam = np.exp(rng.uniform(np.log(0.05), np.log(2.0), n))
    correct = np.zeros((epochs, n), bool)
    for t in range(1, epochs):
        correct[t] = ~correct[t - 1] | (rng.random(n) < np.exp(-lam))  # relearned at once
    fit = fit_decay(*retention_traces(correct))
    assert spearmanr(lam, fit.lam).statistic >= 0.95


# ---------------------------------------------------------------- summary


def make_dynamics(warmup: int = 2) -> Dynamics:
    """The hand-worked record behind `warmup` all-correct head-warmup epochs."""
    rng = np.random.default_rng(0)
    correct = np.concatenate([np.ones((warmup, 5), bool), CORRECT])
    observed = np.concatenate([np.ones((warmup, 5), bool), OBSERVED])
    shape = correct.shape
    prob = np.where(correct, 0.9, 0.2).astype(np.float32)
    el2n = np.arange(shape[0] * 5, dtype=np.float32).reshape(shape) / 100
    return Dynamics(
        sample_keys=np.array([f"img{i}" for i in range(5)]),
        labels=np.array([0, 1, 1, 2, 0]),
        correct=correct,
        observed=observed,
        loss=rng.random(shape).astype(np.float32),
        prob=np.where(observed, prob, np.nan).astype(np.float32),
        margin=rng.random(shape).astype(np.float32),
        el2n=el2n,
        pred=np.where(correct, [0, 1, 1, 2, 0], 2),
        presented=observed.copy(),
        warmup_loss=np.linspace(0, 1, 5, dtype=np.float32),
        meta={"warmup_epochs": warmup, "class_names": ["gull", "tern", "wren"]},
    )


def test_summary_over_fine_tuning_epochs() -> None:
    s = summarise(make_dynamics(), el2n_epochs=2)
    assert s.forgetting_events.tolist() == [0, 0, 2, 1, 1]
    assert s.learning_events.tolist() == [0, 1, 3, 2, 1]
    assert s.first_learned.tolist() == [-1, 3, 2, 2, 5]  # epochs of the whole record
    assert s.never_learned.tolist() == [True, False, False, False, False]
    assert s.unforgettable.tolist() == [False, True, False, False, False]
    assert s.lam[0] == np.inf and s.lam[1] == 0
    assert s.half_life[0] == 0 and s.half_life[1] == np.inf
    assert ((s.lam[2:] > 0) & np.isfinite(s.lam[2:])).all()
    assert s.final_correct.tolist() == [False, True, True, True, False]
    np.testing.assert_allclose(s.mean_prob[[0, 1]], [0.2, (0.2 + 5 * 0.9) / 6], rtol=1e-6)
    np.testing.assert_allclose(s.mean_prob[3], (0.9 + 0.2 + 0.9 + 0.9) / 4, rtol=1e-6)
    assert s.std_prob[0] == pytest.approx(0, abs=1e-7)
    # EL2N: mean over fine-tuning epochs 2 and 3 where observed (sample 4 only at epoch 4)
    el2n = make_dynamics().el2n
    assert s.el2n[0] == pytest.approx((el2n[2, 0] + el2n[3, 0]) / 2)
    assert np.isnan(s.el2n[4])
    assert s.settings["trace"] == "survival"


def test_summary_can_include_warmup() -> None:
    s = summarise(make_dynamics(), include_warmup=True)
    assert s.forgetting_events.tolist() == [1, 1, 2, 1, 2]
    assert s.first_learned.tolist() == [0, 0, 0, 0, 0]
    assert s.never_learned.sum() == 0


@pytest.mark.parametrize("trace", TRACE_KINDS)
@pytest.mark.parametrize("model", MODELS)
def test_summary_of_every_trace_and_model(trace: str, model: str) -> None:
    s = summarise(make_dynamics(), trace=trace, model=model)
    frame = s.to_frame()
    assert len(frame) == 5 and {"lam", "r2", "el2n", "mean_prob", "half_life"} <= set(frame)
    assert s.lam[0] == np.inf and s.lam[1] == 0
    assert np.isnan(s.floor).all() == (model != "exp_floor")


def test_summary_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="trace must be one of"):
        summarise(make_dynamics(), trace="kaplan")
    with pytest.raises(ValueError, match="model must be one of"):
        summarise(make_dynamics(), model="linear")
    with pytest.raises(ValueError, match="el2n_epochs"):
        summarise(make_dynamics(), el2n_epochs=0)
    with pytest.raises(ValueError, match="include_warmup=True"):
        summarise(dataclasses.replace(make_dynamics(), meta={"warmup_epochs": 8}))


def test_pooled_survival_by_hand() -> None:
    # sample 0: episodes of 2 (forgotten at lag 2) then one censored at lag 0;
    # sample 1: one episode forgotten at lag 1; sample 2: one episode running to the end.
    correct = np.array([[1, 1, 1], [1, 0, 1], [0, 0, 1], [1, 0, 1]], bool)
    r = pooled_survival(correct)
    # lag 0: 4 episodes at risk, none ends; lag 1: 3 at risk (censored one left), 1 forgotten;
    # lag 2: 2 at risk, 1 forgotten; lag 3: 1 at risk (sample 2), none forgotten.
    np.testing.assert_allclose(r, [1.0, 2 / 3, 1 / 3, 1 / 3])


def test_pooled_survival_matches_a_per_sample_curve_for_one_sample() -> None:
    correct = np.array([[1], [1], [0], [1], [0], [1]], bool)
    traces, mask = retention_traces(correct)
    np.testing.assert_allclose(pooled_survival(correct)[mask[0]], traces[0][mask[0]])
