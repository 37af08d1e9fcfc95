"""The analysis jobs: each turns one dataset's runs into a report section (DESIGN section 5)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from forgetting import plots, stats
from forgetting.retention import (
    DecayFit,
    Summary,
    fit_decay,
    pooled_survival,
    retention_traces,
    summarise,
)
from forgetting.runs import Run

PUBLISHED = {
    "jaccard": "0.34 (OCTDL) / 0.15 (CUB)",
    "r2": "0.74 (ViT) / 0.52 (CNN)",
    "seed_rho": "~0.01",
    "warmup_rho": "0.30-0.50",
    "sampler": "spaced repetition does not beat random",
}


@dataclass
class Section:
    """One finding for one dataset: readings, tables, figures and machine-readable numbers."""

    job: str
    title: str
    lines: list[str] = field(default_factory=list)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    figures: list[Path] = field(default_factory=list)
    numbers: dict[str, Any] = field(default_factory=dict)
    headline: list[tuple[str, str, str]] = field(default_factory=list)
    skipped: str | None = None


class Context:
    """One dataset's aligned runs, the analysis options, and cached per-run summaries."""

    def __init__(self, dataset: str, runs: list[Run], options: Any, out_dir: Path) -> None:
        self.dataset, self.runs, self.opt, self.out_dir = dataset, runs, options, out_dir
        self._summaries: dict[tuple[int, str, str], Summary] = {}
        self._traces: dict[tuple[int, str], tuple[np.ndarray, np.ndarray]] = {}

    def summary(self, run: Run, trace: str | None = None, model: str | None = None) -> Summary:
        key = (id(run), trace or self.opt.trace, model or self.opt.model)
        if key not in self._summaries:
            self._summaries[key] = summarise(
                run.dynamics, trace=key[1], model=key[2], include_warmup=self.opt.include_warmup,
                min_points=self.opt.min_points, el2n_epochs=self.opt.el2n_epochs)
        return self._summaries[key]

    def traces(self, run: Run, kind: str) -> tuple[np.ndarray, np.ndarray]:
        key = (id(run), kind)
        if key not in self._traces:
            self._traces[key] = retention_traces(*_analysed(self, run), kind=kind)
        return self._traces[key]

    @cached_property
    def grid_fits(self) -> dict[tuple[str, str], dict[int, DecayFit]]:
        """Every (trace, model) fit of every run: one vectorised fit over all runs per pair."""
        out: dict[tuple[str, str], dict[int, DecayFit]] = {}
        sizes = np.cumsum([0] + [r.dynamics.n_samples for r in self.runs])
        for trace in TRACES:
            pooled = [self.traces(r, trace) for r in self.runs]
            traces = np.concatenate([t for t, _ in pooled])
            mask = np.concatenate([m for _, m in pooled])
            for model in MODELS:
                fit = fit_decay(traces, mask, model=model, min_points=self.opt.min_points)
                out[trace, model] = {id(r): _slice(fit, sizes[i], sizes[i + 1])
                                     for i, r in enumerate(self.runs)}
        return out

    def top(self, run: Run) -> np.ndarray:
        """The run's top-q most forgotten samples (DESIGN section 5 tie rules)."""
        return stats.most_forgotten(self.summary(run), q=self.opt.top_q, by=self.opt.score,
                                    seed=self.opt.seed)

    def score(self, run: Run) -> np.ndarray:
        return stats.forgetting_score(self.summary(run), by=self.opt.score)

    def figure(self, name: str) -> Path:
        return self.out_dir / "figures" / f"{self.dataset}_{name}.png"

    @cached_property
    def archs(self) -> list[str]:
        return sorted({r.arch for r in self.runs})

    def by(self, *keys: str) -> dict[tuple, list[Run]]:
        """Runs grouped by the given attributes (e.g. "arch", "sampler")."""
        groups: dict[tuple, list[Run]] = {}
        for run in self.runs:
            groups.setdefault(tuple(getattr(run, k) for k in keys), []).append(run)
        return groups


TRACES, MODELS = ("survival", "raw", "running"), ("exp", "exp_floor", "power")


def _slice(fit: DecayFit, start: int, stop: int) -> DecayFit:
    return DecayFit(model=fit.model, **{k: getattr(fit, k)[start:stop] for k in
                                        ("lam", "floor", "sse", "r2", "n_points", "aic")})


def _p(p: float) -> str:
    if not np.isfinite(p):
        return "p n/a"
    if p == 0:
        return "p < 1e-300"
    return f"p = {p:.2g}" if p >= 1e-4 else f"p < 1e{int(np.floor(np.log10(p))) + 1}"


def _arch_pairs(ctx: Context) -> list[tuple[Run, Run]]:
    """Runs of two different architectures with the same sampler and seed."""
    pairs = []
    for group in ctx.by("sampler", "seed").values():
        pairs += [(a, b) for a, b in combinations(sorted(group, key=lambda r: r.arch), 2)
                  if a.arch != b.arch]
    return pairs


def forgetting_sets(ctx: Context) -> Section:
    """Jaccard of the top-q most forgotten sets across architectures, with null and exact p."""
    sec = Section("forgetting_sets", "Most-forgotten sets across architectures (Jaccard)")
    q, n = ctx.opt.top_q, ctx.runs[0].dynamics.n_samples
    rows = []
    for a, b in _arch_pairs(ctx):
        ta, tb = ctx.top(a), ctx.top(b)
        overlap = len(np.intersect1d(ta, tb))
        rows.append({"sampler": a.sampler, "seed": a.seed, "arch_a": a.arch, "arch_b": b.arch,
                     "n": n, "k": len(ta), "overlap": overlap, "jaccard": stats.jaccard(ta, tb),
                     "null": stats.jaccard_null(q),
                     "p": stats.overlap_pvalue(n, len(ta), len(tb), overlap)})
    labels = [r.label for r in ctx.runs]
    matrix = stats.jaccard_matrix([ctx.top(r) for r in ctx.runs])
    sec.figures.append(plots.heatmap(matrix, labels, ctx.figure("jaccard_heatmap"),
                                     f"{ctx.dataset}: Jaccard of top-{q:.0%} sets"))
    if not rows:
        sec.skipped = "needs runs of two architectures with the same sampler and seed"
        return sec
    table = pd.DataFrame(rows)
    sec.tables["jaccard_arch_pairs"] = table
    for (arch_a, arch_b), g in table.groupby(["arch_a", "arch_b"]):
        mean, worst_p = float(g.jaccard.mean()), float(g.p.max())
        sec.numbers[f"{arch_a} vs {arch_b}"] = {
            "mean_jaccard": mean, "null": stats.jaccard_null(q), "max_p": worst_p,
            "per_seed": g.jaccard.tolist()}
        sec.lines.append(f"{arch_a} vs {arch_b}: Jaccard {mean:.3f} vs {stats.jaccard_null(q):.3f} "
                         f"expected by chance ({_p(worst_p)}, {len(g)} pairs); "
                         f"published {PUBLISHED['jaccard']}.")
        ours = f"{mean:.3f} (chance {stats.jaccard_null(q):.3f})"
        sec.headline.append((f"Jaccard top-{q:.0%}, {arch_a} vs {arch_b}", ours,
                             PUBLISHED["jaccard"]))
    return sec


def _pooled(fits: dict[int, DecayFit], runs: list[Run]) -> DecayFit:
    """One DecayFit over several runs' samples (concatenated)."""
    parts = [fits[id(r)] for r in runs]
    arrays = {k: np.concatenate([getattr(f, k) for f in parts])
              for k in ("lam", "floor", "sse", "r2", "n_points", "aic")}
    return DecayFit(model=parts[0].model, **arrays)


def _r2_stats(fit: DecayFit, min_points: int, ctx: Context | None = None) -> dict[str, Any]:
    """Mean and median R^2 (bootstrap CI when `ctx` is given), and counts of undefined R^2."""
    r2, few = fit.r2, fit.n_points < min_points
    ci = (stats.bootstrap_ci(r2, n=ctx.opt.bootstrap, seed=ctx.opt.seed) if ctx is not None
          else stats.Interval(float(np.nanmean(r2)) if np.isfinite(r2).any() else np.nan,
                              np.nan, np.nan))
    return {"mean_r2": ci.estimate, "ci_low": ci.low, "ci_high": ci.high,
            "median_r2": float(np.nanmedian(r2)) if np.isfinite(r2).any() else float("nan"),
            "n_defined": int(np.isfinite(r2).sum()), "n_few_points": int(few.sum()),
            "n_flat": int((~np.isfinite(r2) & ~few).sum()), "n": int(r2.size),
            "mean_aic": float(np.nanmean(fit.aic)) if np.isfinite(fit.aic).any() else np.nan}


def fit_quality(ctx: Context) -> Section:
    """R^2 of the decay fits by architecture, per trace kind and model, with AIC comparison."""
    sec = Section("fit_quality", "Fit quality of the decay model by architecture (R^2)")
    chosen = (ctx.opt.trace, ctx.opt.model)
    grid = ctx.grid_fits
    fits = {key: {tm: _pooled(per_run, runs) for tm, per_run in grid.items()}
            for key, runs in ctx.by("arch", "sampler").items()}
    main = [{"arch": a, "sampler": s, **_r2_stats(f[chosen], ctx.opt.min_points, ctx)}
            for (a, s), f in fits.items()]
    sec.tables["r2_by_arch"] = pd.DataFrame(main)
    sec.tables["r2_by_trace_and_model"] = pd.DataFrame(
        [{"arch": a, "sampler": s, "trace": t, "model": m, **_r2_stats(fit, ctx.opt.min_points)}
         for (a, s), f in fits.items() for (t, m), fit in f.items()])
    sec.tables["aic_best_model"] = _aic_wins(fits)
    for row in main:
        sec.numbers[f"{row['arch']}/{row['sampler']}"] = row
        sec.lines.append(
            f"{row['arch']} ({row['sampler']}): mean R^2 {row['mean_r2']:.3f} "
            f"[{row['ci_low']:.3f}, {row['ci_high']:.3f}], median {row['median_r2']:.3f}, "
            f"{row['n_defined']} of {row['n']} samples defined ({row['n_flat']} flat, "
            f"{row['n_few_points']} with < {ctx.opt.min_points} points); "
            f"published {PUBLISHED['r2']}.")
        sec.headline.append((f"mean R^2 {row['arch']} ({row['sampler']})",
                             f"{row['mean_r2']:.3f}", PUBLISHED["r2"]))
    r2 = {a: np.concatenate([f[chosen].r2 for (arch, _), f in fits.items() if arch == a])
          for a in ctx.archs}
    for a, b in combinations(ctx.archs, 2):
        test = stats.compare_distributions(r2[a], r2[b])
        sec.numbers[f"mann_whitney {a} vs {b}"] = test._asdict()
        sec.lines.append(f"Mann-Whitney {a} vs {b}: U = {test.u:.0f}, {_p(test.p)}, "
                         f"rank-biserial {test.effect:+.3f}.")
    _fit_figures(ctx, sec, r2)
    return sec


def _aic_wins(fits: dict[tuple[str, str], dict[tuple[str, str], DecayFit]]) -> pd.DataFrame:
    """Per architecture and trace kind: the share of samples whose lowest AIC is each model."""
    rows = []
    for arch in sorted({a for a, _ in fits}):
        for t in TRACES:
            aic = np.stack([np.concatenate([f[t, m].aic for (a, _), f in fits.items() if a == arch])
                            for m in MODELS])
            ok = np.isfinite(aic).all(0)
            wins = np.bincount(aic[:, ok].argmin(0), minlength=3) / max(ok.sum(), 1)
            rows.append({"arch": arch, "trace": t, "n": int(ok.sum()),
                         **dict(zip(MODELS, wins, strict=True))})
    return pd.DataFrame(rows)


def _fit_figures(ctx: Context, sec: Section, r2: dict[str, np.ndarray]) -> None:
    by_arch = ctx.by("arch")
    curves = {}
    for (arch,), runs in by_arch.items():
        correct, observed = zip(*(_analysed(ctx, r) for r in runs), strict=True)
        curves[arch] = pooled_survival(np.concatenate(correct, axis=1),
                                       np.concatenate(observed, axis=1))
    sec.figures.append(plots.retention_curves(curves, ctx.figure("retention_curves"),
                                              f"{ctx.dataset}: retention (Kaplan-Meier, pooled)"))
    lam = {a: np.concatenate([ctx.summary(r).lam for r in rs]) for (a,), rs in by_arch.items()}
    sec.figures.append(plots.distributions(r2, ctx.figure("r2_distribution"), "R^2",
                                           f"{ctx.dataset}: fit R^2 ({ctx.opt.model})"))
    sec.figures.append(plots.distributions(lam, ctx.figure("lambda_distribution"), "lambda",
                                           f"{ctx.dataset}: decay constants", log=True))


def _analysed(ctx: Context, run: Run) -> tuple[np.ndarray, np.ndarray]:
    start = 0 if ctx.opt.include_warmup else run.dynamics.warmup_epochs
    return run.dynamics.correct[start:], run.dynamics.observed[start:]


def seed_stability(ctx: Context) -> Section:
    """Spearman of per-sample forgetting scores (and top-q Jaccard) between seeds."""
    sec = Section("seed_stability", "Stability of per-sample forgetting across seeds")
    rows = []
    for (arch, sampler), runs in ctx.by("arch", "sampler").items():
        if len(runs) < 2:
            continue
        rho, _ = stats.rank_agreement_matrix([ctx.score(r) for r in runs])
        tops = [ctx.top(r) for r in runs]
        for i, j in combinations(range(len(runs)), 2):
            rows.append({"arch": arch, "sampler": sampler, "seed_a": runs[i].seed,
                         "seed_b": runs[j].seed, "spearman": rho[i, j],
                         "jaccard": stats.jaccard(tops[i], tops[j])})
        sec.figures.append(plots.heatmap(rho, [f"s{r.seed}" for r in runs],
                                         ctx.figure(f"seed_spearman_{arch}_{sampler}"),
                                         f"{ctx.dataset} {arch}: Spearman across seeds"))
    if not rows:
        sec.skipped = "needs at least two seeds of one architecture and sampler"
        return sec
    table = pd.DataFrame(rows)
    sec.tables["seed_pairs"] = table
    for (arch, sampler), g in table.groupby(["arch", "sampler"]):
        rho, jac = float(g.spearman.mean()), float(g.jaccard.mean())
        sec.numbers[f"{arch}/{sampler}"] = {"mean_spearman": rho, "mean_jaccard": jac,
                                            "pairs": len(g)}
        sec.lines.append(f"{arch} ({sampler}): mean Spearman rho {rho:.3f} over {len(g)} seed "
                         f"pairs, top-{ctx.opt.top_q:.0%} Jaccard {jac:.3f}; "
                         f"published {PUBLISHED['seed_rho']}.")
        sec.headline.append((f"seed Spearman {arch} ({sampler})", f"{rho:.3f}",
                             PUBLISHED["seed_rho"]))
    return sec


def class_report(ctx: Context) -> Section:
    """Per-class forgetting with names, its consistency across seeds and architectures."""
    sec = Section("class_report", "Class-level forgetting")
    names = ctx.runs[0].dynamics.class_names
    means: dict[str, np.ndarray] = {}
    for (arch,), runs in ctx.by("arch").items():
        tables = [stats.class_table(ctx.summary(r), class_names=names).to_frame() for r in runs]
        avg = pd.concat(tables).groupby(["class_index", "name"], as_index=False).mean()
        avg.insert(0, "arch", arch)
        sec.tables[f"classes_{arch}"] = avg
        means[arch] = avg.mean_events.to_numpy()
        order = avg.sort_values("mean_events", ascending=False).name.tolist()
        sec.numbers[f"{arch} most forgotten"], sec.numbers[f"{arch} least forgotten"] = (
            order[:5], order[-5:][::-1])
        sec.lines.append(f"{arch}: most forgotten classes {', '.join(order[:3])}; least "
                         f"forgotten {', '.join(order[-3:][::-1])}.")
        seeds = [t.mean_events.to_numpy() for t in tables]
        if len(seeds) > 1:
            matrix = stats.rank_agreement_matrix(seeds)[0]
            rho = float(np.nanmean(matrix[np.triu_indices(len(seeds), 1)]))
            sec.numbers[f"{arch} class spearman across seeds"] = rho
            sec.lines.append(f"{arch}: class means agree across seeds, mean Spearman {rho:.3f}.")
        sec.tables[f"confusions_{arch}"] = _confusions(runs, names)
    for a, b in combinations(means, 2):
        rho, p = stats.rank_agreement(means[a], means[b])
        sec.numbers[f"class spearman {a} vs {b}"] = rho
        sec.lines.append(f"Class means {a} vs {b}: Spearman {rho:.3f} ({_p(p)}).")
        sec.headline.append((f"class-level Spearman {a} vs {b}", f"{rho:.3f}",
                             "consistent, interpretable"))
    sec.figures.append(plots.class_bars(names, means, ctx.figure("class_forgetting"),
                                        "mean forgetting events", f"{ctx.dataset}: classes"))
    return sec


def _confusions(runs: list[Run], names: list[str], most: int = 10) -> pd.DataFrame:
    frames = [stats.confusion_pairs(r.dynamics).to_frame() for r in runs]
    pairs = pd.concat(frames).groupby(["true_name", "pred_name"], as_index=False)["count"].sum()
    return pairs.sort_values("count", ascending=False).head(most).reset_index(drop=True)


def warmup_decay(ctx: Context) -> Section:
    """Spearman of the loss after head warmup against the decay constant, per run."""
    sec = Section("warmup_decay", "Loss after head warmup predicts the decay constant")
    rows = []
    for run in ctx.runs:
        s = ctx.summary(run)
        ok = np.isfinite(s.lam) & np.isfinite(s.warmup_loss)
        rho, p = stats.rank_agreement(s.warmup_loss[ok], s.lam[ok])
        rows.append({"run": run.label, "arch": run.arch, "sampler": run.sampler,
                     "seed": run.seed, "n": int(ok.sum()), "spearman": rho, "p": p})
    table = pd.DataFrame(rows)
    sec.tables["warmup_vs_lambda"] = table
    for (arch,), g in table.groupby(["arch"]):
        rho = float(g.spearman.mean())
        sec.numbers[arch] = {"mean_spearman": rho, "max_p": float(g.p.max()), "runs": len(g)}
        sec.lines.append(f"{arch}: Spearman(warmup loss, lambda) {rho:.3f} on average over "
                         f"{len(g)} runs ({_p(float(g.p.max()))} at worst); published "
                         f"{PUBLISHED['warmup_rho']}.")
        sec.headline.append((f"warmup loss vs lambda, {arch}", f"{rho:.3f}",
                             PUBLISHED["warmup_rho"]))
    return sec


def sampler_comparison(ctx: Context) -> Section:
    """Final test accuracy of each sampler against `random` over seeds, paired by seed."""
    sec = Section("sampler_comparison", "Samplers against random (compute matched)")
    runs = {(r.arch, r.sampler, r.seed): r for r in ctx.runs}
    rows = []
    for (arch, sampler), group in ctx.by("arch", "sampler").items():
        if sampler == "random":
            continue
        seeds = sorted(r.seed for r in group if (arch, "random", r.seed) in runs)
        for metric in ("test_acc", "test_balanced_acc"):
            x = np.array([runs[(arch, sampler, s)].final[metric] for s in seeds], float)
            y = np.array([runs[(arch, "random", s)].final[metric] for s in seeds], float)
            d = stats.paired_comparison(x, y)
            rows.append({"arch": arch, "sampler": sampler, "metric": metric, "seeds": len(seeds),
                         "mean": x.mean(), "sd": x.std(ddof=1) if len(x) > 1 else np.nan,
                         "random_mean": y.mean(),
                         "random_sd": y.std(ddof=1) if len(y) > 1 else np.nan,
                         "diff": d.mean_diff, "ci_low": d.low, "ci_high": d.high,
                         "p_wilcoxon": d.p_wilcoxon,
                         "presentations": np.mean([_presented(runs[(arch, sampler, s)])
                                                   for s in seeds]),
                         "random_presentations": np.mean([_presented(runs[(arch, "random", s)])
                                                          for s in seeds])})
    if not rows:
        sec.skipped = "needs runs of a sampler other than random (with matching random seeds)"
        return sec
    table = pd.DataFrame(rows)
    sec.tables["samplers_vs_random"] = table
    for row in table[table.metric == "test_acc"].to_dict("records"):
        key = f"{row['arch']}/{row['sampler']}"
        sec.numbers[key] = row
        sec.lines.append(
            f"{key}: test accuracy {row['mean']:.4f} +- {row['sd']:.4f} vs random "
            f"{row['random_mean']:.4f} +- {row['random_sd']:.4f}; difference {row['diff']:+.4f} "
            f"[{row['ci_low']:+.4f}, {row['ci_high']:+.4f}], Wilcoxon {_p(row['p_wilcoxon'])}, "
            f"{row['presentations']:.0f} vs {row['random_presentations']:.0f} presentations; "
            f"published: {PUBLISHED['sampler']}.")
        sec.headline.append((f"{key} minus random, test acc", f"{row['diff']:+.4f}",
                             PUBLISHED["sampler"]))
    return sec


def _presented(run: Run) -> int:
    """Sample presentations in fine-tuning epochs (the compute an arm used)."""
    return int(np.asarray(run.dynamics.presented[run.dynamics.warmup_epochs:]).sum())


def ensemble(ctx: Context) -> Section:
    """Coverage of two architectures together, and how many of A's top-q B retains."""
    sec = Section("ensemble", "Ensemble coverage across architectures")
    rows = []
    for a, b in _arch_pairs(ctx):
        ca, cb = ctx.summary(a).final_correct, ctx.summary(b).final_correct
        ta, tb = ctx.top(a), ctx.top(b)
        rows.append({"sampler": a.sampler, "seed": a.seed, "arch_a": a.arch, "arch_b": b.arch,
                     "either": float(np.mean(ca | cb)), "a_alone": float(ca.mean()),
                     "b_alone": float(cb.mean()), "both": float(np.mean(ca & cb)),
                     "a_top_retained_by_b": float(cb[ta].mean()),
                     "b_top_retained_by_a": float(ca[tb].mean())})
    if not rows:
        sec.skipped = "needs runs of two architectures with the same sampler and seed"
        return sec
    table = pd.DataFrame(rows)
    sec.tables["coverage"] = table
    for (arch_a, arch_b), g in table.groupby(["arch_a", "arch_b"]):
        m = g.mean(numeric_only=True)
        sec.numbers[f"{arch_a} + {arch_b}"] = {k: float(m[k]) for k in
                                               ("either", "a_alone", "b_alone", "both",
                                                "a_top_retained_by_b", "b_top_retained_by_a")}
        sec.lines.append(
            f"{arch_a} + {arch_b}: {m.either:.1%} of samples correct at the end for at least one "
            f"({m.a_alone:.1%} and {m.b_alone:.1%} alone); {m.a_top_retained_by_b:.1%} of "
            f"{arch_a}'s top-{ctx.opt.top_q:.0%} are correct in {arch_b}.")
    return sec


def data_map(ctx: Context) -> Section:
    """Cartography-style data maps: confidence against variability, per architecture."""
    sec = Section("data_map", "Data maps (confidence x variability)")
    for (arch,), runs in ctx.by("arch").items():
        run = runs[0]
        s = ctx.summary(run)
        c, o = _analysed(ctx, run)
        frac = np.where(o, c, 0).sum(0) / np.maximum(o.sum(0), 1)
        sec.figures.append(plots.data_map(s.std_prob, s.mean_prob, frac,
                                          ctx.figure(f"data_map_{arch}"),
                                          f"{ctx.dataset} {run.label}"))
        hard = float(np.mean(s.mean_prob < 0.25))
        ambiguous = float(np.mean(s.std_prob > 0.2))
        sec.numbers[run.label] = {"mean_confidence": float(np.nanmean(s.mean_prob)),
                                  "mean_variability": float(np.nanmean(s.std_prob)),
                                  "frac_hard": hard, "frac_ambiguous": ambiguous}
        sec.lines.append(f"{run.label}: mean confidence {np.nanmean(s.mean_prob):.3f}, "
                         f"{hard:.1%} hard-to-learn (confidence < 0.25), {ambiguous:.1%} "
                         f"ambiguous (variability > 0.2).")
    return sec


JOBS: dict[str, Callable[[Context], Section]] = {
    job.__name__: job for job in (forgetting_sets, fit_quality, seed_stability, class_report,
                                  warmup_decay, sampler_comparison, ensemble, data_map)
}
