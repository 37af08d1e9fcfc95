"""Forgetting scores, top-q sets, overlaps, rank agreement, intervals, tests and class tables.

Definitions follow DESIGN section 5. Everything is vectorised over samples; the only loops run
over runs (pairwise matrices) or over blocks of bootstrap resamples.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from typing import Any, NamedTuple

import numpy as np
from scipy import stats as sps

from forgetting.dynamics import Dynamics
from forgetting.retention import Summary, as_record, check_choice, transitions

SCORES = ("events", "decay")
BOOTSTRAP_BLOCK = 1 << 22  # resampled values drawn per block: bounds bootstrap memory


def _frame(table: Any) -> Any:
    import pandas as pd

    return pd.DataFrame({f.name: getattr(table, f.name) for f in fields(table)})


# ---------------------------------------------------------------- scores and top-q sets


def forgetting_score(summary: Summary, by: str = "events") -> np.ndarray:
    """Per-sample score, higher = more forgotten: F_i (never learned: +inf) or lambda."""
    check_choice("by", by, SCORES)
    if by == "events":
        return np.where(summary.never_learned, np.inf, summary.forgetting_events.astype(float))
    return np.asarray(summary.lam, dtype=float)


def top_q(score: Any, q: float = 0.10, seed: int = 0, tiebreak: Any = None) -> np.ndarray:
    """Indices of exactly round(q N) samples with the highest score, most forgotten first.

    round() takes halves up. Ties are broken by the higher `tiebreak` (e.g. lambda), then by a
    random order drawn from `seed`; NaN scores rank last.
    """
    s = np.asarray(score, dtype=float)
    if s.ndim != 1:
        raise ValueError(f"score must be 1-D (one value per sample), got shape {s.shape}")
    if not 0.0 < q <= 1.0:
        raise ValueError(f"q must lie in (0, 1], got {q}")
    t = np.zeros_like(s) if tiebreak is None else np.asarray(tiebreak, dtype=float)
    if t.shape != s.shape:
        raise ValueError(f"tiebreak has shape {t.shape}, expected the shape of score {s.shape}")
    k = int(np.floor(q * len(s) + 0.5))
    shuffle = np.random.default_rng(seed).permutation(len(s))
    return np.lexsort((shuffle, -t, -s))[:k]


def most_forgotten(
    summary: Summary, q: float = 0.10, by: str = "events", seed: int = 0
) -> np.ndarray:
    """The top-q set of DESIGN section 5: score `by`, ties by lambda (or by F_i), then random."""
    tiebreak = summary.lam if by == "events" else summary.forgetting_events
    return top_q(forgetting_score(summary, by), q=q, seed=seed, tiebreak=tiebreak)


# ---------------------------------------------------------------- overlaps


def _index_set(x: Any) -> np.ndarray:
    """A set of sample indices from an index array or a boolean mask."""
    x = np.asarray(x)
    return np.flatnonzero(x) if x.dtype == bool else np.unique(x)


def jaccard(a: Any, b: Any) -> float:
    """|A n B| / |A u B| of two index sets (or boolean masks); NaN when both are empty."""
    a, b = _index_set(a), _index_set(b)
    union = np.union1d(a, b).size
    return np.intersect1d(a, b).size / union if union else float("nan")


def jaccard_null(q: float) -> float:
    """Expected Jaccard of two independent random top-q sets: q / (2 - q)."""
    if not 0.0 < q <= 1.0:
        raise ValueError(f"q must lie in (0, 1], got {q}")
    return q / (2.0 - q)


def overlap_pvalue(n: int, size_a: int, size_b: int, overlap: int) -> float:
    """P(|A n B| >= overlap) for a random size_b-subset B of n items (exact hypergeometric)."""
    if not (0 <= size_a <= n and 0 <= size_b <= n):
        raise ValueError(f"set sizes must lie in [0, n={n}], got {size_a} and {size_b}")
    if not max(0, size_a + size_b - n) <= overlap <= min(size_a, size_b):
        raise ValueError(
            f"overlap={overlap} is impossible for sets of {size_a} and {size_b} of {n}"
        )
    return float(sps.hypergeom.sf(overlap - 1, n, size_a, size_b))


def jaccard_matrix(sets: Sequence[Any]) -> np.ndarray:
    """Pairwise Jaccard of several index sets (R x R, diagonal 1)."""
    r = len(sets)
    out = np.ones((r, r))
    for i in range(r):
        for j in range(i + 1, r):
            out[i, j] = out[j, i] = jaccard(sets[i], sets[j])
    return out


# ---------------------------------------------------------------- aligning runs


def align(runs: Sequence[Any], intersect: bool = False) -> list[Any]:
    """Reorder several runs (Dynamics or Summary) to one common sample order, by sample_keys.

    The order is the first run's. Runs over different sample sets raise ValueError unless
    `intersect`, which keeps only the samples present in every run.
    """
    if len(runs) == 0:
        raise ValueError("align needs at least one run")
    keys = [np.asarray(run.sample_keys) for run in runs]
    for j, k in enumerate(keys):
        if np.unique(k).size != k.size:
            raise ValueError(f"run {j} has duplicate sample_keys; they must identify samples")
    common = keys[0]
    for k in keys[1:]:
        common = common[np.isin(common, k)]
    if not intersect:
        for j, k in enumerate(keys):
            if k.size != common.size:
                extra = np.setdiff1d(k, common)
                raise ValueError(
                    f"runs hold different samples: run {j} has {extra.size} of its {k.size} "
                    f"sample_keys missing from another run (e.g. {extra[:3].tolist()}); pass "
                    f"intersect=True to keep the {common.size} samples common to all runs"
                )
    return [_take(run, _positions(k, common)) for run, k in zip(runs, keys, strict=True)]


def _positions(keys: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    sorter = np.argsort(keys, kind="stable")
    return sorter[np.searchsorted(keys, wanted, sorter=sorter)]


def _take(run: Any, idx: np.ndarray) -> Any:
    """A copy of a dataclass record keeping samples `idx` (last axis of every per-sample array)."""
    n = len(run.sample_keys)
    changes = {}
    for f in fields(run):
        value = getattr(run, f.name)
        if isinstance(value, np.ndarray) and value.ndim >= 1 and value.shape[-1] == n:
            changes[f.name] = np.asarray(value[..., idx])
    return dataclasses.replace(run, **changes)


# ---------------------------------------------------------------- rank agreement


def rank_agreement(scores_a: Any, scores_b: Any) -> tuple[float, float]:
    """Spearman rho and its p-value over samples where both scores are defined (not NaN)."""
    a, b = np.asarray(scores_a, dtype=float), np.asarray(scores_b, dtype=float)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"scores must be 1-D of one shape, got {a.shape} and {b.shape}")
    ok = ~(np.isnan(a) | np.isnan(b))
    a, b = a[ok], b[ok]
    if a.size < 3 or (a == a[0]).all() or (b == b[0]).all():
        return float("nan"), float("nan")
    res = sps.spearmanr(a, b)
    return float(res.statistic), float(res.pvalue)


def rank_agreement_matrix(scores: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
    """Pairwise Spearman (rho, p) matrices (R x R) across the score vectors of R aligned runs."""
    r = len(scores)
    rho, p = np.ones((r, r)), np.zeros((r, r))
    for i in range(r):
        for j in range(i + 1, r):
            rho[i, j], p[i, j] = rank_agreement(scores[i], scores[j])
            rho[j, i], p[j, i] = rho[i, j], p[i, j]
    return rho, p


# ---------------------------------------------------------------- intervals and tests


class Interval(NamedTuple):
    estimate: float
    low: float
    high: float


class MannWhitney(NamedTuple):
    u: float
    p: float
    effect: float  # rank-biserial correlation 2U/(n_a n_b) - 1: > 0 when a tends to exceed b


class Paired(NamedTuple):
    mean_diff: float
    low: float
    high: float
    p_wilcoxon: float
    n: int


def _defined(x: Any) -> np.ndarray:
    x = np.asarray(x, dtype=float).ravel()
    return x[~np.isnan(x)]


def bootstrap_ci(
    values: Any,
    stat: Callable[..., Any] = np.mean,
    n: int = 10_000,
    seed: int = 0,
    level: float = 0.95,
) -> Interval:
    """Percentile bootstrap interval of `stat` over the non-NaN `values`.

    `stat` must accept `axis` (numpy reductions do): resamples are evaluated in blocks.
    """
    v = _defined(values)
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    if v.size == 0:
        return Interval(float("nan"), float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    draws = np.empty(n)
    block = max(1, BOOTSTRAP_BLOCK // v.size)
    for start in range(0, n, block):
        size = min(block, n - start)
        draws[start : start + size] = stat(v[rng.integers(0, v.size, (size, v.size))], axis=1)
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(draws, [tail, 1.0 - tail])
    return Interval(float(stat(v)), float(low), float(high))


def compare_distributions(a: Any, b: Any) -> MannWhitney:
    """Two-sided Mann-Whitney U test of a vs b (NaN dropped), with the rank-biserial effect."""
    a, b = _defined(a), _defined(b)
    if a.size == 0 or b.size == 0:
        return MannWhitney(float("nan"), float("nan"), float("nan"))
    res = sps.mannwhitneyu(a, b, alternative="two-sided")
    u = float(res.statistic)
    return MannWhitney(u, float(res.pvalue), 2.0 * u / (a.size * b.size) - 1.0)


def paired_comparison(x: Any, y: Any, level: float = 0.95) -> Paired:
    """Mean of x - y, its t-based interval and the Wilcoxon signed-rank p (NaN pairs dropped)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"x and y must be 1-D of one shape, got {x.shape} and {y.shape}")
    d = _defined(np.where(np.isnan(y), np.nan, x - y))
    n = d.size
    mean = float(d.mean()) if n else float("nan")
    if n < 2:
        return Paired(mean, float("nan"), float("nan"), float("nan"), n)
    half = sps.t.ppf(0.5 + level / 2.0, n - 1) * d.std(ddof=1) / np.sqrt(n)
    p = 1.0 if not d.any() else float(sps.wilcoxon(d).pvalue)
    return Paired(mean, float(mean - half), float(mean + half), p, n)


# ---------------------------------------------------------------- class level


@dataclass
class ClassTable:
    """Per-class forgetting (one entry per class); `mean_lam` is over finite lambda."""

    class_index: np.ndarray
    name: np.ndarray
    n: np.ndarray
    mean_events: np.ndarray
    mean_lam: np.ndarray
    frac_unforgettable: np.ndarray
    frac_never_learned: np.ndarray

    def to_frame(self) -> Any:
        return _frame(self)


def class_table(
    summary: Summary, labels: Any = None, class_names: Sequence[str] | None = None
) -> ClassTable:
    """Per class: n, mean F_i, mean finite lambda, fraction unforgettable and never learned."""
    y = np.asarray(summary.labels if labels is None else labels)
    if y.shape != (summary.n_samples,):
        raise ValueError(f"labels has shape {y.shape}, expected ({summary.n_samples},)")
    if y.size and y.min() < 0:
        raise ValueError("labels must be non-negative class indices")
    names = list(class_names or [])
    k = max(len(names), int(y.max()) + 1 if y.size else 0)
    names += [str(i) for i in range(len(names), k)]
    finite = np.isfinite(summary.lam)

    def count(weights: Any = None) -> np.ndarray:
        return np.bincount(y, weights=weights, minlength=k)

    n = count()
    with np.errstate(invalid="ignore", divide="ignore"):
        return ClassTable(
            class_index=np.arange(k),
            name=np.asarray(names),
            n=n,
            mean_events=count(summary.forgetting_events) / n,
            mean_lam=count(np.where(finite, summary.lam, 0.0)) / count(finite),
            frac_unforgettable=count(summary.unforgettable) / n,
            frac_never_learned=count(summary.never_learned) / n,
        )


@dataclass
class ConfusionPairs:
    """(true class, class predicted at the forgetting epoch) over all forgetting events."""

    true: np.ndarray
    pred: np.ndarray
    true_name: np.ndarray
    pred_name: np.ndarray
    count: np.ndarray

    def to_frame(self) -> Any:
        return _frame(self)


def confusion_pairs(dynamics: Dynamics, include_warmup: bool = False) -> ConfusionPairs:
    """Every forgetting event counted by (true, predicted) class, most frequent pairs first."""
    start = 0 if include_warmup else dynamics.warmup_epochs
    c, o = as_record(dynamics.correct[start:], dynamics.observed[start:])
    t, i = np.nonzero(transitions(c, o)[0])
    true = np.asarray(dynamics.labels)[i].astype(np.int64)
    pred = np.asarray(dynamics.pred[start:])[t, i].astype(np.int64)
    if (pred < 0).any():
        raise ValueError("pred holds negative classes at observed forgetting epochs")
    k = int(max(true.max(initial=-1), pred.max(initial=-1))) + 1
    pairs, count = np.unique(true * k + pred, return_counts=True)
    true, pred = pairs // max(k, 1), pairs % max(k, 1)
    order = np.lexsort((pred, true, -count))
    names = list(dynamics.class_names)
    names += [str(j) for j in range(len(names), k)]
    named = np.asarray(names, dtype=str)
    return ConfusionPairs(
        true=true[order],
        pred=pred[order],
        true_name=named[true[order]],
        pred_name=named[pred[order]],
        count=count[order],
    )
