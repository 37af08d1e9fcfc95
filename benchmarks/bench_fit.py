"""Benchmark: vectorised retention traces + decay fits vs a per-sample scipy loop.

Simulates N samples x E epochs of training (per-sample forgetting rate lambda, log-uniform),
times `retention_traces` and `fit_decay` for every model on all N, and
`scipy.optimize.least_squares` per sample on a subset (extrapolated to N). Prints seconds, the
speedup, peak memory, the largest rate disagreement and the worst SSE excess over scipy.

Each stage runs `--repeat` times: the first run is "cold" (on a freshly booted VM, the first
touch of the ~0.9 GB of traces costs seconds of page faults), the best is "warm".

    python benchmarks/bench_fit.py            # N = 1,000,000, E = 100
    python benchmarks/bench_fit.py --n 20000  # quick
"""

from __future__ import annotations

import argparse
import resource
import time
from collections.abc import Callable
from typing import TypeVar

import numpy as np
from scipy.optimize import least_squares

from forgetting.retention import MODELS, fit_decay, retention_traces

MAX_RATE = 10.0
T = TypeVar("T")


def simulate(n: int, epochs: int, seed: int) -> np.ndarray:
    """E x N correctness: learned with prob. p per epoch, kept with prob. exp(-lambda)."""
    rng = np.random.default_rng(seed)
    keep = np.exp(-np.exp(rng.uniform(np.log(0.01), np.log(2.0), n))).astype(np.float32)
    learn = rng.uniform(0.2, 0.9, n).astype(np.float32)
    correct = np.zeros((epochs, n), bool)
    for t in range(epochs):
        u = rng.random(n, dtype=np.float32)
        correct[t] = np.where(correct[t - 1], u < keep, u < learn) if t else u < learn
    return correct


def scipy_fit(lags: np.ndarray, y: np.ndarray, model: str) -> tuple[float, float]:
    """(SSE, rate) from least_squares with the same bounds, one start, tight tolerances."""
    tau = np.log1p(lags) if model == "power" else lags
    if model == "exp_floor":
        x0, bounds = [0.3, 0.3], ([0.0, 0.0], [MAX_RATE, 1.0])

        def residual(p: np.ndarray) -> np.ndarray:
            return p[1] + (1 - p[1]) * np.exp(-p[0] * tau) - y
    else:
        x0, bounds = [0.3], ([0.0], [MAX_RATE])

        def residual(p: np.ndarray) -> np.ndarray:
            return np.exp(-p[0] * tau) - y

    res = least_squares(
        residual, x0, bounds=bounds, method="dogbox", xtol=1e-12, ftol=1e-12, gtol=1e-12
    )
    return 2 * res.cost, float(res.x[0])


def sharp(lags: np.ndarray, rate: float, floor: float, model: str, sse: float) -> bool:
    """Whether moving the rate by the 1e-4 tolerance is visible to scipy's stopping rules."""
    tau = np.log1p(lags) if model == "power" else lags
    decay = np.exp(-rate * tau)
    j = (1 - floor if model == "exp_floor" else 1.0) * tau * decay
    curvature = j @ j
    if model == "exp_floor":
        jf = 1 - decay
        curvature -= (j @ jf) ** 2 / (jf @ jf) if j @ jf else 0.0
    tol = max(1e-6, 1e-4 * rate)
    return curvature * tol**2 > 1e-11 * sse and curvature * tol > 1e-10


def compare(traces, mask, fit, model: str, subset: np.ndarray) -> dict[str, float]:
    """Run scipy on `subset`: its time, the worst SSE excess and rate disagreement."""
    start = time.perf_counter()
    results = []
    for i in subset:
        lags = np.flatnonzero(mask[i]).astype(float)
        results.append(scipy_fit(lags, traces[i, mask[i]], model))
    seconds = time.perf_counter() - start
    excess, worst_rel, compared = -np.inf, 0.0, 0
    for i, (sse, rate) in zip(subset, results, strict=True):
        excess = max(excess, fit.sse[i] - sse)
        lags = np.flatnonzero(mask[i]).astype(float)
        if abs(fit.sse[i] - sse) <= 1e-9 and sharp(lags, fit.lam[i], fit.floor[i], model, sse):
            compared += 1
            worst_rel = max(worst_rel, abs(fit.lam[i] - rate) / max(rate, 1e-2))
    return {"seconds": seconds, "excess": excess, "rel": worst_rel, "compared": compared}


def peak_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def timed(repeat: int, call: Callable[[], T]) -> tuple[T, float, float]:
    """(result, first seconds, best seconds) of `repeat` calls; the previous result is freed."""
    times, result = [], None
    for _ in range(repeat):
        del result
        start = time.perf_counter()
        result = call()
        times.append(time.perf_counter() - start)
    return result, times[0], min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="samples")
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--subset", type=int, default=2000, help="samples fitted by scipy")
    parser.add_argument("--repeat", type=int, default=2, help="timed runs of each stage")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    start = time.perf_counter()
    correct = simulate(args.n, args.epochs, args.seed)
    print(f"simulated N={args.n:,} x E={args.epochs} in {time.perf_counter() - start:.1f} s")
    (traces, mask), cold, t_traces = timed(args.repeat, lambda: retention_traces(correct))
    print(
        f"retention_traces (survival): {t_traces:.2f} s warm, {cold:.2f} s cold; "
        f"{mask.sum(1).mean():.1f} points/sample"
    )
    rng = np.random.default_rng(args.seed + 1)
    learned = np.flatnonzero(mask.any(1))
    subset = rng.choice(learned, min(args.subset, learned.size), replace=False)
    for model in MODELS:
        fit, cold_fit, t_fit = timed(
            args.repeat, lambda m=model: fit_decay(traces, mask, model=m, max_rate=MAX_RATE)
        )
        c = compare(traces, mask, fit, model, subset)
        t_scipy = c["seconds"] * args.n / subset.size
        print(
            f"{model:9s} fit_decay {t_fit:5.2f} s warm ({cold_fit:5.2f} cold) | traces+fit "
            f"{t_traces + t_fit:5.2f} s warm ({cold + cold_fit:5.2f} cold) | scipy loop "
            f"{c['seconds']:.2f} s on {subset.size:,} -> {t_scipy:,.0f} s for N | speedup "
            f"{t_scipy / t_fit:,.0f}x fit, {t_scipy / (t_traces + t_fit):,.0f}x traces+fit | "
            f"max rel lam disagreement {c['rel']:.1e} ({c['compared']:,} compared) | "
            f"worst SSE excess over scipy {c['excess']:.1e}"
        )
    print(f"peak memory (max RSS of the process): {peak_gb():.2f} GB")


if __name__ == "__main__":
    main()
