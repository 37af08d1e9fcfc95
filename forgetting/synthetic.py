"""Synthetic run dirs with planted forgetting structure, for tests and benchmarks.

Every sample i has a period P_i: after learning it is correct for P_i - 1 epochs, wrong for one,
and so on, so it has exactly floor(E_f / P_i) forgetting events in E_f fine-tuning epochs.
Each architecture has a planted top-q set (never-learned samples and periods 2-3; every other
sample has a period >= 5, so at most E_f / 5 events) and the two architectures' sets share a
planted number of samples. Seeds reorder samples within those groups through a latent score
with a planted correlation; classes differ in how likely their samples are in the top set; a
forgotten sample is predicted as a planted confuser class; warmup loss is correlated with the
period; final test accuracy is a planted base plus a planted gain per sampler. Records are
written in a shuffled sample order, so analyses must align runs on `sample_keys`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from forgetting.checkpoint import CONFIG, DYNAMICS, METRICS
from forgetting.dynamics import Dynamics


@dataclass
class Plan:
    n_samples: int = 2000
    finetune_epochs: int = 30
    warmup_epochs: int = 2
    n_classes: int = 8
    archs: tuple[str, ...] = ("resnet18", "deit_small")
    seeds: tuple[int, ...] = (0, 1, 2)
    samplers: tuple[str, ...] = ("random",)
    dataset: str = "synthetic"
    experiment: str = "synthetic"
    top_q: float = 0.1
    arch_overlap: int = 80          # samples shared by the two archs' top-q sets
    seed_rho: float = 0.7           # latent correlation between seeds of one arch
    warmup_rho: float = 0.6         # latent correlation between warmup loss and shortness of period
    never_learned: int = 20
    sampler_gain: dict[str, float] = field(default_factory=dict)
    seed: int = 0

    @property
    def top_k(self) -> int:
        return int(np.floor(self.top_q * self.n_samples + 0.5))


@dataclass
class Planted:
    """The truth behind each written run, in the canonical sample order (keys `s00000`...)."""

    finetune_epochs: int
    labels: np.ndarray
    class_weight: np.ndarray
    confuser: np.ndarray
    top: dict[str, np.ndarray]                  # arch -> planted top-q indices
    period: dict[str, np.ndarray] = field(default_factory=dict)      # run label -> P (inf: never)
    warmup_loss: dict[str, np.ndarray] = field(default_factory=dict)
    final_correct: dict[str, np.ndarray] = field(default_factory=dict)
    test_acc: dict[str, float] = field(default_factory=dict)
    run_dirs: dict[str, Path] = field(default_factory=dict)

    def events(self, label: str) -> np.ndarray:
        """Planted forgetting events: floor(E_f / P), 0 for never-learned samples."""
        p = self.period[label]
        steps = self.finetune_epochs // np.where(np.isfinite(p), p, 1)
        return np.where(np.isfinite(p), steps, 0).astype(int)


def write_runs(root: str | Path, plan: Plan) -> Planted:
    """Write one finished run dir per (arch, sampler, seed) under `root`; return the truth."""
    rng = np.random.default_rng(plan.seed)
    n = plan.n_samples
    labels = np.arange(n) % plan.n_classes
    class_weight = np.linspace(0.2, 1.8, plan.n_classes)[rng.permutation(plan.n_classes)]
    confuser = (np.arange(plan.n_classes) + 1 + rng.integers(0, plan.n_classes - 1,
                                                             plan.n_classes)) % plan.n_classes
    never = rng.choice(n, plan.never_learned, replace=False)
    tops = _top_sets(rng, plan, labels, class_weight, never)
    truth = Planted(plan.finetune_epochs, labels, class_weight, confuser, tops)
    for arch in plan.archs:
        base = rng.standard_normal(n)
        for seed in plan.seeds:
            u = np.sqrt(plan.seed_rho) * base + np.sqrt(1 - plan.seed_rho) * rng.standard_normal(n)
            period = _periods(u, tops[arch], never, plan.finetune_epochs)
            for sampler in plan.samplers:
                label = f"{arch}/{sampler}/s{seed}"
                truth.period[label] = period
                _write_run(Path(root), plan, truth, label, arch, sampler, seed, rng)
    return truth


def _top_sets(rng: np.random.Generator, plan: Plan, labels: np.ndarray, weight: np.ndarray,
              never: np.ndarray) -> dict[str, np.ndarray]:
    """Class-weighted top-q sets holding the never-learned samples, sharing `arch_overlap`."""
    n, k = plan.n_samples, plan.top_k
    p = weight[labels].astype(float)
    p[never] = 0
    first = np.concatenate([never, rng.choice(n, k - len(never), replace=False, p=p / p.sum())])
    tops = {plan.archs[0]: first}
    if len(plan.archs) > 1:
        shared = np.concatenate([never, rng.choice(np.setdiff1d(first, never),
                                                   plan.arch_overlap - len(never), replace=False)])
        q = p.copy()
        q[first] = 0
        rest = rng.choice(n, k - len(shared), replace=False, p=q / q.sum())
        for arch in plan.archs[1:]:
            tops[arch] = np.concatenate([shared, rest])
    return tops


def _periods(u: np.ndarray, top: np.ndarray, never: np.ndarray, ef: int) -> np.ndarray:
    """Periods from the latent score: 2-3 inside the top set, 5..ef+5 outside (high u: short)."""
    n = len(u)
    period = np.empty(n)
    inside = np.zeros(n, bool)
    inside[top] = True
    for group, low, levels in ((inside, 2, 2), (~inside, 5, ef + 1)):
        idx = np.flatnonzero(group)
        rank = np.argsort(np.argsort(-u[idx])) / max(len(idx), 1)
        period[idx] = low + np.floor(rank * levels)
    period[never] = np.inf
    return period


def _write_run(root: Path, plan: Plan, truth: Planted, label: str, arch: str, sampler: str,
               seed: int, rng: np.random.Generator) -> None:
    period, labels, n = truth.period[label], truth.labels, plan.n_samples
    w, ef = plan.warmup_epochs, plan.finetune_epochs
    t = np.arange(ef)[:, None]
    p = np.where(np.isfinite(period), period, 1)[None, :]
    correct = np.zeros((w + ef, n), bool)
    correct[w:] = (t % p != p - 1) & np.isfinite(period)[None, :]
    short = -np.where(np.isfinite(period), period, 0)
    z = (short - short.mean()) / short.std()
    noise = rng.standard_normal(n)
    warm = np.exp(np.sqrt(plan.warmup_rho) * z + np.sqrt(1 - plan.warmup_rho) * noise)
    prob = np.where(correct, 0.8, 0.15) + rng.uniform(-0.05, 0.05, correct.shape)
    pred = np.where(correct, labels, truth.confuser[labels]).astype(np.int32)
    order = rng.permutation(n)
    record = Dynamics(
        sample_keys=np.array([f"s{i:05d}" for i in range(n)])[order], labels=labels[order],
        correct=correct[:, order], observed=np.ones_like(correct), loss=-np.log(prob)[:, order],
        prob=prob[:, order], margin=np.where(correct, 1.0, -1.0)[:, order],
        el2n=(1 - prob)[:, order] * np.sqrt(2), pred=pred[:, order],
        presented=np.ones_like(correct), warmup_loss=warm[order].astype(np.float32),
        meta={"dataset": plan.dataset, "arch": arch, "sampler": sampler, "seed": seed,
              "experiment": plan.experiment, "warmup_epochs": w, "epochs": w + ef,
              "tracking_mode": "eval",
              "class_names": [f"class_{c}" for c in range(plan.n_classes)]},
    )
    acc = 0.7 + 0.01 * seed + plan.sampler_gain.get(sampler, 0.0)
    run_dir = root / plan.experiment / plan.dataset / arch / sampler / f"seed{seed}"
    run_dir.mkdir(parents=True, exist_ok=True)
    record.meta.update(final_test_acc=acc, final_test_balanced_acc=acc - 0.05)
    record.save(run_dir / DYNAMICS)
    metrics = [{"epoch": e + 1, "test_acc": acc, "test_balanced_acc": acc - 0.05,
                "presented": n} for e in range(w + ef)]
    (run_dir / METRICS).write_text("".join(json.dumps(m) + "\n" for m in metrics))
    (run_dir / CONFIG).write_text(f"arch:\n  name: {arch}\nseed: {seed}\n")
    truth.warmup_loss[label] = warm
    truth.final_correct[label] = correct[-1]
    truth.test_acc[label] = acc
    truth.run_dirs[label] = run_dir

