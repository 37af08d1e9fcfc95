"""Benchmark: per-epoch scheduling cost of every sampler at N = 1,000,000 (DESIGN section 6).

Simulates a record of N samples x E epochs (one head-warmup epoch, then fine-tuning; per-sample
learning and forgetting rates as in bench_fit.py) and drives each sampler as the Trainer does:
`order(epoch)` then `observe(epoch, correct, observed)`. Prints the mean and the worst seconds per
fine-tuning epoch. The online sampler fits, after each epoch, one sample per new learning-episode
signature (samples whose episodes changed and share no signature with a fitted sample), so its cost
grows with the number of distinct episode histories, i.e. with the epochs so far.

    python benchmarks/bench_samplers.py              # N = 1,000,000, E = 30, budget 0.5
    python benchmarks/bench_samplers.py --n 20000    # quick
    python benchmarks/bench_samplers.py --tracking train   # observed = presented
    python benchmarks/bench_samplers.py --epochs 100 --samplers spaced_repetition_online
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from bench_fit import simulate  # the same simulated training record as the fit benchmark

from forgetting.samplers import (
    LeitnerSampler,
    OnlineSpacedRepetitionSampler,
    RandomSampler,
    SpacedRepetitionSampler,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--budget", type=float, default=0.5)
    parser.add_argument("--tracking", choices=("eval", "train"), default="eval",
                        help="eval: every sample observed each epoch; train: the presented ones")
    parser.add_argument("--samplers", default="random,spaced_repetition,"
                        "spaced_repetition_online,leitner")
    args = parser.parse_args()
    correct = simulate(args.n, args.epochs, 0)
    observed = np.ones_like(correct)
    lam = np.random.default_rng(1).exponential(0.3, args.n)
    lam[::20] = np.inf
    make = {
        "random": lambda: RandomSampler(args.n, 0, args.budget),
        "spaced_repetition": lambda: SpacedRepetitionSampler(args.n, 0, lam, args.budget),
        "spaced_repetition_online": lambda: OnlineSpacedRepetitionSampler(args.n, 0, args.budget),
        "leitner": lambda: LeitnerSampler(args.n, 0, args.budget),
    }
    print(f"N = {args.n:,}, E = {args.epochs} (1 warmup), budget {args.budget}, "
          f"tracking {args.tracking}")
    for name in args.samplers.split(","):
        sampler = make[name]()
        seconds = []
        for epoch in range(args.epochs):
            start = time.perf_counter()
            order = sampler.order(epoch, epoch == 0)
            if args.tracking == "train":
                observed[epoch] = False
                observed[epoch, order] = True
            sampler.observe(epoch, correct, observed)
            if epoch:
                seconds.append(time.perf_counter() - start)
        print(f"{name:>25}: {np.mean(seconds):.3f} s/epoch mean, {np.max(seconds):.3f} s worst "
              f"(order + observe, {len(seconds)} fine-tuning epochs)")


if __name__ == "__main__":
    main()
