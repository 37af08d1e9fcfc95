"""Forgetting events, retention traces and vectorised decay fits (DESIGN section 5).

Every function takes `E x N` arrays (epoch axis first, as in the dynamics record) and an optional
`observed` mask, and works on all N samples at once: loops run over epochs, lags, grid points or
chunks of samples, never over samples.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from forgetting.dynamics import Dynamics

TRACE_KINDS = ("survival", "raw", "running")
MODELS = ("exp", "exp_floor", "power")
N_PARAMS = {"exp": 1, "exp_floor": 2, "power": 1}
CHUNK = 4096
FIT_CHUNK = 4096
GRID_SIZE = 64
GRID_MIN = 1e-4
NEWTON_ITERS = 30
NEWTON_TOL = 1e-9
AIC_EPS = 1e-12


def check_choice(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    """Raise ValueError naming `name` and the allowed values unless `value` is one of them."""
    if value not in allowed:
        raise ValueError(f"{name} must be one of {list(allowed)}, got {value!r}")


def as_record(correct: Any, observed: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """Validate `correct` (E x N) and `observed` (same shape, default all True) as bool arrays."""
    c = np.asarray(correct)
    if c.ndim != 2:
        raise ValueError(f"correct must be a 2-D (epochs x samples) array, got shape {c.shape}")
    o = np.ones(c.shape, bool) if observed is None else np.asarray(observed)
    if o.shape != c.shape:
        raise ValueError(f"observed has shape {o.shape}, expected the shape of correct {c.shape}")
    return c.astype(bool, copy=False), o.astype(bool, copy=False)


def _scan(ufunc: np.ufunc, a: np.ndarray, reverse: bool = False) -> np.ndarray:
    """`ufunc.accumulate(a, axis=0)` in place, row by row (much faster than numpy's own)."""
    rows = range(a.shape[0] - 2, -1, -1) if reverse else range(1, a.shape[0])
    step = 1 if reverse else -1
    for t in rows:
        ufunc(a[t + step], a[t], out=a[t])
    return a


def _chunks(n: int, size: int) -> Iterator[slice]:
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))


def _default_workers() -> int:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(4, cores or 1))


def _run_chunks(job: Callable[[slice], None], n: int, size: int, workers: int | None) -> None:
    """Call `job` on every chunk of range(n) in `workers` threads (default: cores, at most 4).

    BLAS is held to one thread meanwhile (process-wide): multi-threaded BLAS is ~3x slower on
    these skinny products.
    """
    if size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {size}")
    workers = _default_workers() if workers is None else workers
    with threadpool_limits(1, user_api="blas"):
        if workers <= 1:
            for s in _chunks(n, size):
                job(s)
            return
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(job, _chunks(n, size)))


# ---------------------------------------------------------------- events


def transitions(
    correct: Any, observed: Any = None, chunk_size: int = CHUNK
) -> tuple[np.ndarray, np.ndarray]:
    """(forget, learn): E x N bool, True at the epoch where a forgetting / learning event occurs.

    Transitions are between consecutive *observed* epochs; the first observation is a learning
    event when it is correct.
    """
    c, o = as_record(correct, observed)
    forget = np.zeros(c.shape, bool)
    learn = np.zeros(c.shape, bool)

    def job(s: slice) -> None:
        forget[:, s], learn[:, s] = _transitions(c[:, s], o[:, s])

    _run_chunks(job, c.shape[1], chunk_size, workers=1)
    return forget, learn


def _transitions(c: np.ndarray, o: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    forget, learn = np.empty_like(c), np.empty_like(c)
    was = np.zeros(c.shape[1], bool)  # correct at the last observation so far
    flip = np.empty_like(was)
    for t in range(c.shape[0]):
        np.logical_and(np.greater(was, c[t], out=flip), o[t], out=forget[t])
        np.logical_and(np.greater(c[t], was, out=flip), o[t], out=learn[t])
        was ^= np.logical_xor(was, c[t], out=flip) & o[t]
    return forget, learn


def forgetting_events(correct: Any, observed: Any = None) -> np.ndarray:
    """F_i: number of observed correct -> incorrect transitions, (N,) int."""
    return transitions(correct, observed)[0].sum(0)


def learning_events(correct: Any, observed: Any = None) -> np.ndarray:
    """Number of observed incorrect (or first) -> correct transitions, (N,) int."""
    return transitions(correct, observed)[1].sum(0)


def first_learned(correct: Any, observed: Any = None) -> np.ndarray:
    """L_i: first observed epoch with c=1 (index into the given epochs), -1 if never, (N,) int."""
    c, o = as_record(correct, observed)
    hit = c & o
    return np.where(hit.any(0), hit.argmax(0), -1)


def never_learned(correct: Any, observed: Any = None) -> np.ndarray:
    """Samples never observed correct, (N,) bool."""
    return first_learned(correct, observed) < 0


def unforgettable(correct: Any, observed: Any = None) -> np.ndarray:
    """Samples learned and never forgotten (F_i = 0), (N,) bool."""
    return ~never_learned(correct, observed) & (forgetting_events(correct, observed) == 0)


# ---------------------------------------------------------------- traces


def retention_traces(
    correct: Any,
    observed: Any = None,
    kind: str = "survival",
    max_lag: int | None = None,
    dtype: Any = np.float32,
    chunk_size: int = CHUNK,
    workers: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-sample retention r_i(k), k = 0..K-1 (K = max_lag + 1, default E): (traces, mask).

    `traces` is N x K `dtype`, NaN where `mask` (N x K bool) is False; float32 by default (the
    values are fractions of at most E episodes; it halves the largest array, 0.4 GB at
    1M x 100, and fits still run in float64). `survival` is the
    Kaplan-Meier fraction of the sample's learning episodes still correct k epochs after the
    episode began (an episode ends at the first observed incorrect epoch; one still running at
    the last observed epoch is censored there); points are the lags with an episode at risk.
    `raw` is c(L+k) and `running` the mean of c(L+j) over observed j <= k; their points are the
    observed lags. Never-learned samples have no points.
    """
    check_choice("kind", kind, TRACE_KINDS)
    c, o = as_record(correct, observed)
    n_epochs, n = c.shape
    n_lags = n_epochs if max_lag is None else int(max_lag) + 1
    if n_lags < 1:
        raise ValueError(f"max_lag must be >= 0, got {max_lag}")
    traces = np.empty((n, n_lags), dtype)
    mask = np.empty((n, n_lags), bool)

    def job(s: slice) -> None:
        cs, os_ = np.ascontiguousarray(c[:, s]), np.ascontiguousarray(o[:, s])
        if kind == "survival":
            r, m = _survival(cs, os_, n_lags)
        else:
            r, m = _aligned(cs, os_, n_lags, running=kind == "running")
        r[~m] = np.nan
        _put_transposed(traces[s], r)
        _put_transposed(mask[s], m)

    _run_chunks(job, n, chunk_size, workers)
    return traces, mask


def _put_transposed(dst: np.ndarray, src: np.ndarray, tile: int = 512) -> None:
    """dst[...] = src.T, in column tiles (a cache-friendly transpose)."""
    for j in range(0, src.shape[1], tile):
        dst[j : j + tile] = src[:, j : j + tile].T


def _survival(c: np.ndarray, o: np.ndarray, n_lags: int) -> tuple[np.ndarray, np.ndarray]:
    """Kaplan-Meier over learning episodes for one chunk: (K x C values, K x C at-risk mask)."""
    events, at_risk = _episode_counts(c, o, n_lags)
    survive = np.ones(events.size)
    hit = np.flatnonzero(events)
    survive[hit] -= events.ravel()[hit] / at_risk.ravel()[hit]
    return _scan(np.multiply, survive.reshape(events.shape)), at_risk > 0


def _episode_counts(c: np.ndarray, o: np.ndarray, n_lags: int) -> tuple[np.ndarray, np.ndarray]:
    """Per lag and sample: episodes forgotten at that lag, and episodes at risk (K x C each)."""
    n = c.shape[1]
    epoch = np.arange(c.shape[0], dtype=np.int32)[:, None]
    forget, learn = _transitions(c, o)
    began = _scan(np.maximum, np.where(learn, epoch, -1))  # the current episode's start
    at = np.flatnonzero(forget)
    i = at % n
    lag = at // n - began.ravel()[at]
    # an episode still running at the end is censored at the last observed epoch
    last = np.where(o, epoch, -1).max(0)
    running = np.flatnonzero(np.take_along_axis(c, np.maximum(last, 0)[None], 0)[0] & (last >= 0))
    end_lag = np.concatenate([lag, last[running] - began[-1, running]])
    end_at = np.concatenate([i, running])
    size = n_lags * n
    ends = np.bincount(np.minimum(end_lag, n_lags - 1) * n + end_at, minlength=size)
    inside = lag < n_lags
    events = np.bincount(lag[inside] * n + i[inside], minlength=size).reshape(n_lags, n)
    at_risk = _scan(np.add, ends.reshape(n_lags, n), reverse=True)
    return events, at_risk


def pooled_survival(correct: Any, observed: Any = None, max_lag: int | None = None) -> np.ndarray:
    """Kaplan-Meier retention r(k) over the learning episodes of all samples together, (K,).

    The population curve (one estimate from every episode at risk at each lag), not a mean of
    per-sample curves, which would over-represent samples with long episodes at long lags.
    NaN from the first lag with no episode at risk.
    """
    c, o = as_record(correct, observed)
    n_lags = c.shape[0] if max_lag is None else int(max_lag) + 1
    events, at_risk = _episode_counts(c, o, n_lags)
    e, r = events.sum(1), at_risk.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.cumprod(np.where(r > 0, 1.0 - e / r, np.nan))


def _aligned(
    c: np.ndarray, o: np.ndarray, n_lags: int, running: bool
) -> tuple[np.ndarray, np.ndarray]:
    """c(L+k) (or its running mean over observed lags) for one chunk: (K x C, K x C mask)."""
    n_epochs = c.shape[0]
    learned = first_learned(c, o)
    idx = learned[None, :] + np.arange(n_lags)[:, None]
    valid = (learned >= 0) & (idx < n_epochs)
    idx = np.where(valid, idx, 0)
    m = np.take_along_axis(o, idx, 0) & valid
    r = (np.take_along_axis(c, idx, 0) & m).astype(np.float64)
    if running:
        with np.errstate(invalid="ignore", divide="ignore"):
            r = _scan(np.add, r) / _scan(np.add, m.astype(np.int32))
    return r, m


# ---------------------------------------------------------------- decay fits


@dataclass
class DecayFit:
    """Per-sample least-squares decay fits, all arrays (N,).

    `lam` is the rate parameter of the model (lambda for `exp`/`exp_floor`, beta for `power`),
    `floor` the asymptote b of `exp_floor` (NaN for the other models).
    """

    model: str
    lam: np.ndarray
    floor: np.ndarray
    sse: np.ndarray
    r2: np.ndarray
    n_points: np.ndarray
    aic: np.ndarray

    @property
    def beta(self) -> np.ndarray:
        """The power-law exponent (alias of `lam`)."""
        return self.lam

    @property
    def half_life(self) -> np.ndarray:
        return half_life(self.lam, self.model)


def half_life(rate: np.ndarray, model: str = "exp") -> np.ndarray:
    """Epochs for the decaying part to halve: ln2/lam (exp, exp_floor), 2^(1/beta)-1 (power).

    inf where the rate is 0, 0 where it is inf, NaN where it is NaN.
    """
    check_choice("model", model, MODELS)
    rate = np.asarray(rate, dtype=np.float64)
    with np.errstate(divide="ignore", over="ignore"):
        if model == "power":
            return np.expm1(math.log(2.0) / rate)
        return math.log(2.0) / rate


def fit_decay(
    traces: Any,
    mask: Any = None,
    model: str = "exp",
    min_points: int = 3,
    max_rate: float = 10.0,
    chunk_size: int = FIT_CHUNK,
    workers: int | None = None,
) -> DecayFit:
    """Least-squares fit of `model` to each row of `traces` (N x K, lag k = column), bounded.

    Points are (k, r(k)) where `mask` (default: finite entries) is True. Models: `exp`
    r = exp(-lam k); `exp_floor` r = b + (1-b) exp(-lam k), 0 <= b <= 1; `power`
    r = (1+k)^(-beta); the rate lies in [0, max_rate]. Linear parameters are profiled out in
    closed form; the rate comes from a grid search followed by safeguarded Newton steps.
    `r2` is NaN for a flat trace (SS_tot = 0) or fewer than `min_points` points.
    AIC = n ln(SSE/n + 1e-12) + 2p (the epsilon guards SSE = 0).
    A trace with no points is a never-learned sample: lam = +inf, n_points = 0, and
    floor, sse, r2, aic NaN.
    """
    check_choice("model", model, MODELS)
    r = np.asarray(traces)
    r = r if np.issubdtype(r.dtype, np.floating) else r.astype(np.float64)
    if r.ndim != 2:
        raise ValueError(f"traces must be a 2-D (samples x lags) array, got shape {r.shape}")
    m = np.isfinite(r) if mask is None else np.asarray(mask, dtype=bool)
    if m.shape != r.shape:
        raise ValueError(f"mask has shape {m.shape}, expected the shape of traces {r.shape}")
    if not max_rate > 0:
        raise ValueError(f"max_rate must be > 0, got {max_rate}")
    out = {name: np.full(r.shape[0], np.nan) for name in ("lam", "floor", "sse", "r2", "aic")}
    out["n_points"] = np.zeros(r.shape[0], np.int64)
    # rows sorted by the position of their last point, so each chunk fits only the lags it uses
    width = np.where(m.any(1), m.shape[1] - m[:, ::-1].argmax(1), 0)
    order = np.argsort(width, kind="stable")

    def job(s: slice) -> None:
        rows = order[s]
        cols = slice(0, max(int(width[rows[-1]]), 1))
        rc = r[rows, cols].astype(np.float64)
        mc = m[rows, cols] & np.isfinite(rc)
        for name, value in _fit_chunk(rc, mc, model, min_points, max_rate).items():
            out[name][rows] = value

    _run_chunks(job, r.shape[0], chunk_size, workers)
    return DecayFit(model=model, **out)


def _tau(n_lags: int, model: str) -> np.ndarray:
    """The model's time axis: r = b + (1-b) exp(-rate tau); tau = ln(1+k) for the power law."""
    k = np.arange(n_lags, dtype=np.float64)
    return np.log1p(k) if model == "power" else k


def _rate_grid(max_rate: float) -> np.ndarray:
    low = min(GRID_MIN, max_rate / 2)
    return np.concatenate([[0.0], np.geomspace(low, max_rate, GRID_SIZE - 1)])


class _Profile:
    """The SSE of one chunk as a function of the rate alone, linear parameters profiled out."""

    def __init__(self, r: np.ndarray, w: np.ndarray, tau: np.ndarray, floor: bool) -> None:
        self.w, self.wr, self.floor = w, w * r, floor
        self.tau = tau
        self.powers = np.stack([np.ones_like(tau), tau, tau * tau], axis=1)  # K x 3
        self.s0, self.r0, self.rr = w.sum(1), self.wr.sum(1), (self.wr * r).sum(1)

    def on_grid(self, grid: np.ndarray) -> np.ndarray:
        """SSE at every grid rate: C x G, via matrix products."""
        e = np.exp(-np.multiply.outer(self.tau, grid))
        s2, r1 = self.w @ (e * e), self.wr @ e
        f = self.rr[:, None] - 2.0 * r1 + s2
        if not self.floor:
            return f
        s1 = self.w @ e
        a, b = self.s0[:, None] - 2.0 * s1 + s2, self.r0[:, None] - r1 - s1 + s2
        floor = _best_floor(a, b)
        return f - 2.0 * floor * b + floor * floor * a

    def at(self, rate: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, ...]:
        """(SSE, dSSE/drate, d2SSE/drate2, floor) at a per-sample rate, for the given rows.

        `rows` are increasing; all of them (the common case) skips the row gathers.
        """
        every = rows.size == self.w.shape[0]
        w, wr = (self.w, self.wr) if every else (self.w[rows], self.wr[rows])
        e = np.exp(-np.multiply.outer(rate, self.tau))
        we = w * e
        s2, p2, q2 = ((we * e) @ self.powers).T  # sum w e^2, sum w tau e^2, sum w tau^2 e^2
        r1, pr, qr = ((wr * e) @ self.powers).T  # the same with w r e
        f, d1, d2 = self.rr[rows] - 2.0 * r1 + s2, 2.0 * pr - 2.0 * p2, 4.0 * q2 - 2.0 * qr
        if not self.floor:
            return f, d1, d2, None
        s1, p1, q1 = (we @ self.powers).T
        a, b = self.s0[rows] - 2.0 * s1 + s2, self.r0[rows] - r1 - s1 + s2
        da, d2a = 2.0 * p1 - 2.0 * p2, 4.0 * q2 - 2.0 * q1
        db, d2b = pr + p1 - 2.0 * p2, 4.0 * q2 - qr - q1
        floor = _best_floor(a, b)
        f = f - 2.0 * floor * b + floor * floor * a
        d1 = d1 - 2.0 * floor * db + floor * floor * da
        d2 = d2 - 2.0 * floor * d2b + floor * floor * d2a
        # where the floor is interior it moves with the rate: Schur complement of the Hessian
        cross = 2.0 * (floor * da - db)
        interior = (floor > 0) & (floor < 1)
        d2 = np.where(interior, d2 - cross * cross / (2.0 * np.where(interior, a, 1.0)), d2)
        return f, d1, d2, floor


def _best_floor(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """argmin over 0 <= x <= 1 of x^2 a - 2 x b; 1 where a = 0 (the floor of a flat-1 model)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(a > 0, np.clip(b / a, 0.0, 1.0), 1.0)


def _fit_chunk(
    r: np.ndarray, m: np.ndarray, model: str, min_points: int, max_rate: float
) -> dict[str, np.ndarray]:
    w = m.astype(np.float64)
    r = np.where(m, r, 0.0)
    tau = _tau(r.shape[1], model)
    prof = _Profile(r, w, tau, floor=model == "exp_floor")
    rate = _minimise(prof, _rate_grid(max_rate), max_rate)
    rate[(r == 1.0).sum(1) == w.sum(1)] = 0.0  # all points 1: rate 0 fits exactly (floor moot)
    decayed = -np.expm1(-np.multiply.outer(rate, tau))  # 1 - exp(-rate tau), exact near 0
    if model == "exp_floor":
        # r - pred = (r - 1) + (1 - b) decayed: the best 1 - b in closed form, clipped to [0, 1]
        a, b = (w * decayed**2).sum(1), (w * (1.0 - r) * decayed).sum(1)
        keep = np.where(a > 0, np.clip(b / np.where(a > 0, a, 1.0), 0.0, 1.0), 0.0)
        floor = 1.0 - keep
    else:
        keep, floor = np.ones(len(rate)), np.full(len(rate), np.nan)
    pred = 1.0 - keep[:, None] * decayed
    n = w.sum(1)
    sse = (w * (r - pred) ** 2).sum(1)
    return {
        "lam": np.where(n > 0, rate, np.inf),
        "floor": np.where(n > 0, floor, np.nan),
        "n_points": m.sum(1),
        **_quality(r, m, n, sse, model, min_points),
    }


def _quality(
    r: np.ndarray, m: np.ndarray, n: np.ndarray, sse: np.ndarray, model: str, min_points: int
) -> dict[str, np.ndarray]:
    """SSE, R^2 and AIC with the NaN conventions of DESIGN section 5."""
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = (r * m).sum(1) / n
        ss_tot = (m * (r - mean[:, None]) ** 2).sum(1)
        flat = np.where(m, r, -np.inf).max(1) == np.where(m, r, np.inf).min(1)
        r2 = np.where(flat | (n < min_points), np.nan, 1.0 - sse / ss_tot)
        aic = n * np.log(sse / n + AIC_EPS) + 2 * N_PARAMS[model]
    empty = n == 0
    return {"sse": np.where(empty, np.nan, sse), "r2": r2, "aic": np.where(empty, np.nan, aic)}


def _minimise(prof: _Profile, grid: np.ndarray, max_rate: float) -> np.ndarray:
    """Per-sample argmin of the profiled SSE over [0, max_rate].

    A grid search brackets the best grid point and, where there is one, the best other local
    minimum of the grid (a second basin); bracketed Newton refines both; the lower one wins.
    """
    f_grid = prof.on_grid(grid)
    g = f_grid.argmin(1)
    rows = np.arange(len(g))
    x, f = _newton(prof, grid, g, f_grid, rows, max_rate)
    other = _second_minimum(f_grid, g)
    rows = np.flatnonzero(other >= 0)
    if rows.size:
        x2, f2 = _newton(prof, grid, other[rows], f_grid, rows, max_rate)
        better = f2 < f[rows]
        x[rows[better]] = x2[better]
    return x


def _second_minimum(f_grid: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Per row, the best grid local minimum outside g's bracket [g-1, g+1]; -1 if none."""
    f, inf = f_grid, np.inf
    cand = np.empty_like(f)
    inner = f[:, 1:-1]
    np.copyto(cand[:, 1:-1], np.where((inner < f[:, :-2]) & (inner <= f[:, 2:]), inner, inf))
    cand[:, 0] = np.where(f[:, 0] <= f[:, 1], f[:, 0], inf)
    cand[:, -1] = np.where(f[:, -1] < f[:, -2], f[:, -1], inf)
    rows = np.arange(len(g))
    for step in (-1, 0, 1):
        cand[rows, np.clip(g + step, 0, f.shape[1] - 1)] = inf
    best = cand.argmin(1)
    return np.where(cand[rows, best] < inf, best, -1)


def _newton(
    prof: _Profile,
    grid: np.ndarray,
    g: np.ndarray,
    f_grid: np.ndarray,
    rows: np.ndarray,
    max_rate: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Safeguarded Newton on the profiled SSE from grid point g, within [grid[g-1], grid[g+1]].

    Returns the best rate seen and its SSE for each of `rows`; never worse than the grid point.
    """
    left, right = np.maximum(g - 1, 0), np.minimum(g + 1, len(grid) - 1)
    best_x, best_f = grid[g], f_grid[rows, g]
    lo, hi = grid[left], grid[right]
    x = _vertex(lo, best_x, hi, f_grid[rows, left], best_f, f_grid[rows, right])
    active = np.arange(len(rows))
    for _ in range(NEWTON_ITERS):
        if active.size == 0:
            break
        xa = x[active]
        f, d1, d2 = prof.at(xa, rows[active])[:3]
        better = f < best_f[active]
        best_f[active[better]], best_x[active[better]] = f[better], xa[better]
        lo[active] = np.where(d1 < 0, xa, lo[active])
        hi[active] = np.where(d1 > 0, xa, hi[active])
        with np.errstate(invalid="ignore", divide="ignore"):
            newton = xa - d1 / d2
        ok = (d2 > 0) & (newton >= lo[active]) & (newton <= hi[active])
        kkt = (d1 == 0) | ((xa <= 0) & (d1 >= 0)) | ((xa >= max_rate) & (d1 <= 0))
        done = kkt | (ok & (np.abs(newton - xa) <= NEWTON_TOL * (xa + NEWTON_TOL)))
        x[active] = np.where(ok, newton, 0.5 * (lo[active] + hi[active]))
        active = active[~done]
    return best_x, best_f


def _vertex(
    a: np.ndarray, b: np.ndarray, c: np.ndarray, fa: np.ndarray, fb: np.ndarray, fc: np.ndarray
) -> np.ndarray:
    """Minimum of the parabola through (a, fa), (b, fb), (c, fc), kept inside [a, c]; else b."""
    p, q = (b - a) * (fb - fc), (b - c) * (fb - fa)
    with np.errstate(invalid="ignore", divide="ignore"):
        x = b - 0.5 * ((b - a) * p - (b - c) * q) / (p - q)
    return np.where((x > a) & (x < c), x, b)


# ---------------------------------------------------------------- per-sample summary


@dataclass
class Summary:
    """Every per-sample statistic of one run, each an (N,) array; `to_frame()` for pandas.

    `first_learned` counts epochs of the whole record (-1: never learned); `lam` follows the
    conventions of DESIGN section 5 (+inf never learned, 0 unforgettable); `mean_prob` and
    `std_prob` are the confidence and variability over the analysed observed epochs; `el2n` is
    the mean EL2N over the first `el2n_epochs` fine-tuning epochs.
    """

    sample_keys: np.ndarray
    labels: np.ndarray
    forgetting_events: np.ndarray
    learning_events: np.ndarray
    first_learned: np.ndarray
    never_learned: np.ndarray
    unforgettable: np.ndarray
    lam: np.ndarray
    floor: np.ndarray
    r2: np.ndarray
    sse: np.ndarray
    aic: np.ndarray
    n_points: np.ndarray
    half_life: np.ndarray
    final_correct: np.ndarray
    mean_prob: np.ndarray
    std_prob: np.ndarray
    el2n: np.ndarray
    warmup_loss: np.ndarray
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def n_samples(self) -> int:
        return len(self.sample_keys)

    def to_frame(self) -> Any:
        """A pandas DataFrame with one row per sample and one column per statistic."""
        import pandas as pd

        return pd.DataFrame(
            {f.name: getattr(self, f.name) for f in fields(self) if f.name != "settings"}
        )


def summarise(
    dynamics: Dynamics,
    trace: str = "survival",
    model: str = "exp",
    include_warmup: bool = False,
    min_points: int = 3,
    el2n_epochs: int = 5,
) -> Summary:
    """All per-sample statistics of a record, over fine-tuning epochs unless `include_warmup`."""
    check_choice("trace", trace, TRACE_KINDS)
    check_choice("model", model, MODELS)
    if el2n_epochs < 1:
        raise ValueError(f"el2n_epochs must be >= 1, got {el2n_epochs}")
    start = 0 if include_warmup else dynamics.warmup_epochs
    if start >= dynamics.n_epochs:
        raise ValueError(
            f"the record has {dynamics.n_epochs} epochs, all head warmup "
            f"(warmup_epochs={start}); pass include_warmup=True to analyse them"
        )
    c, o = as_record(dynamics.correct[start:], dynamics.observed[start:])
    forget, learn = transitions(c, o)
    events = forget.sum(0)
    learned = first_learned(c, o)
    never = learned < 0
    solid = ~never & (events == 0)
    fit = fit_decay(*retention_traces(c, o, kind=trace), model=model, min_points=min_points)
    lam = np.where(never, np.inf, np.where(solid, 0.0, fit.lam))
    mean_prob, std_prob = _masked_moments(dynamics.prob[start:], o)
    ft = slice(dynamics.warmup_epochs, dynamics.warmup_epochs + el2n_epochs)
    last = np.where(o, np.arange(len(o))[:, None], -1).max(0)
    return Summary(
        sample_keys=np.asarray(dynamics.sample_keys),
        labels=np.asarray(dynamics.labels),
        forgetting_events=events,
        learning_events=learn.sum(0),
        first_learned=np.where(never, -1, learned + start),
        never_learned=never,
        unforgettable=solid,
        lam=lam,
        floor=fit.floor,
        r2=fit.r2,
        sse=fit.sse,
        aic=fit.aic,
        n_points=fit.n_points,
        half_life=half_life(lam, model),
        final_correct=np.take_along_axis(c, np.maximum(last, 0)[None], 0)[0] & (last >= 0),
        mean_prob=mean_prob,
        std_prob=std_prob,
        el2n=_masked_moments(dynamics.el2n[ft], dynamics.observed[ft])[0],
        warmup_loss=np.asarray(dynamics.warmup_loss),
        settings={
            "trace": trace,
            "model": model,
            "include_warmup": include_warmup,
            "min_points": min_points,
            "el2n_epochs": el2n_epochs,
        },
    )


def _masked_moments(values: Any, mask: Any) -> tuple[np.ndarray, np.ndarray]:
    """Per-sample mean and (population) std of `values` over epochs where `mask`; NaN if none."""
    m = np.asarray(mask, dtype=bool)
    v = np.where(m, np.asarray(values, dtype=np.float64), 0.0)
    n = m.sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = v.sum(0) / n
        var = (np.where(m, v - mean, 0.0) ** 2).sum(0) / n
    return mean, np.sqrt(var)
