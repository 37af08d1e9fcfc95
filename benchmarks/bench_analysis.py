"""Benchmark: `analysis=all` over the paper grid's shape (24 runs of N = 6,000 x E = 32).

2 datasets x 2 architectures x 3 seeds x 2 samplers of synthetic runs with planted structure;
prints the seconds of loading, of each job (summed over datasets) and of writing the report.
Target on the 2-core machine: <= 15 s in all, excluding interpreter start.

    python benchmarks/bench_analysis.py
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from types import SimpleNamespace

from forgetting.analyses import JOBS, Context
from forgetting.report import write_report
from forgetting.runs import by_dataset, find_runs
from forgetting.synthetic import Plan, write_runs

OPTIONS = dict(jobs=list(JOBS), top_q=0.1, trace="survival", model="exp", score="events",
               include_warmup=False, min_points=3, el2n_epochs=5, bootstrap=1000, seed=0,
               max_table_rows=20)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=6000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "runs"
        for i, dataset in enumerate(("cub200", "octdl")):
            write_runs(root, Plan(n_samples=args.n, finetune_epochs=30, warmup_epochs=2,
                                  dataset=dataset, experiment="paper", seed=i,
                                  arch_overlap=args.n // 25, never_learned=args.n // 100,
                                  samplers=("random", "spaced_repetition")))
        start = time.perf_counter()
        found = find_runs(root / "paper")
        groups = by_dataset(found.runs)
        seconds = defaultdict(float, load=time.perf_counter() - start)
        options = SimpleNamespace(**OPTIONS)
        sections = {}
        for dataset, runs in groups.items():
            ctx = Context(dataset, runs, options, Path(tmp) / "out")
            sections[dataset] = []
            for name, job in JOBS.items():
                t = time.perf_counter()
                sections[dataset].append(job(ctx))
                seconds[name] += time.perf_counter() - t
        t = time.perf_counter()
        header = {"experiment": "paper", "runs_root": str(root), "analysis": OPTIONS,
                  "runs_per_dataset": {d: len(r) for d, r in groups.items()}}
        write_report(Path(tmp) / "out", header, sections, found.unfinished)
        seconds["write report"] = time.perf_counter() - t
        total = time.perf_counter() - start
    n_runs = sum(len(r) for r in groups.values())
    print(f"analysis=all over {n_runs} runs of N={args.n} x E=32")
    for name, s in seconds.items():
        print(f"  {name:<20} {s:6.2f} s")
    print(f"total {total:.2f} s (target <= 15 s): {'met' if total <= 15 else 'NOT met'}")


if __name__ == "__main__":
    main()
