"""Finding and loading finished runs: local run dirs, or W&B `dynamics` artifacts."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from forgetting.checkpoint import CHECKPOINT, CONFIG, DYNAMICS, METRICS
from forgetting.dynamics import Dynamics
from forgetting.stats import align

log = logging.getLogger(__name__)
RUN_DIR_LAYOUT = (
    "a finished run dir holds config.yaml, metrics.jsonl and dynamics/meta.json, e.g. "
    "outputs/<experiment>/<dataset>/<arch>/<sampler>/seed<k>/ as written by forgetting.train"
)


class RunsError(RuntimeError):
    """Runs cannot be found or combined as asked; the message says where and why."""


@dataclass
class Run:
    """One finished training run: its identity, record, config and per-epoch metrics."""

    path: Path
    dataset: str
    arch: str
    sampler: str
    seed: int
    dynamics: Dynamics
    metrics: list[dict[str, Any]] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.arch}/{self.sampler}/s{self.seed}"

    @property
    def final(self) -> dict[str, Any]:
        """The last epoch's metrics (test accuracy etc.), from metrics.jsonl or meta.json."""
        if self.metrics:
            return self.metrics[-1]
        meta = self.dynamics.meta
        return {"test_acc": meta.get("final_test_acc"),
                "test_balanced_acc": meta.get("final_test_balanced_acc")}


@dataclass
class Found:
    runs: list[Run]
    unfinished: list[Path]


def find_runs(root: str | Path, filters: dict[str, Sequence[Any] | None] | None = None) -> Found:
    """Every finished run under `root` that passes `filters` ({"arch": [...], ...}); unfinished
    run dirs (a checkpoint or config but no record) are returned apart."""
    root = Path(root)
    if not root.is_dir():
        raise RunsError(f"runs.root={root} does not exist; {RUN_DIR_LAYOUT}")
    runs = [_load_local(meta.parent.parent) for meta in sorted(root.rglob(f"{DYNAMICS}/meta.json"))]
    finished = {r.path for r in runs}
    unfinished = sorted({p.parent for p in root.rglob(CHECKPOINT)} - finished)
    unfinished = [p for p in unfinished if not any(p == f or f in p.parents for f in finished)]
    untracked = [r.path for r in runs if r.dynamics.meta.get("tracking_mode") == "none"]
    for path in untracked:
        log.warning("skipping %s: trained with tracking.mode=none, its record is empty", path)
    kept = [r for r in runs if r.path not in untracked and _passes(r, filters or {})]
    if not kept:
        raise RunsError(
            f"no finished runs under {root.resolve()}"
            + (f" matching {filters}" if any((filters or {}).values()) else "")
            + f" ({len(unfinished)} unfinished, {len(untracked)} with tracking.mode=none); "
            + RUN_DIR_LAYOUT
        )
    return Found(kept, unfinished)


def _passes(run: Run, filters: dict[str, Sequence[Any] | None]) -> bool:
    for key, allowed in filters.items():
        if allowed is not None and len(allowed) and getattr(run, key) not in list(allowed):
            return False
    return True


def _load_local(path: Path) -> Run:
    dynamics = Dynamics.load(path / DYNAMICS)
    has_config = (path / CONFIG).is_file()
    config = OmegaConf.to_container(OmegaConf.load(path / CONFIG)) if has_config else {}
    metrics_file = path / METRICS
    metrics = [json.loads(line) for line in metrics_file.open()] if metrics_file.is_file() else []
    return _run(path, dynamics, metrics, config)


def _run(path: Path, dynamics: Dynamics, metrics: list, config: dict) -> Run:
    meta = dynamics.meta
    return Run(path=path, dataset=meta["dataset"], arch=meta["arch"], sampler=meta["sampler"],
               seed=int(meta["seed"]), dynamics=dynamics, metrics=metrics, config=config)


def by_dataset(runs: Iterable[Run], intersect: bool = False) -> dict[str, list[Run]]:
    """Runs grouped by dataset (never mixed), each group aligned on `sample_keys`."""
    groups: dict[str, list[Run]] = {}
    for run in sorted(runs, key=lambda r: (r.dataset, r.arch, r.sampler, r.seed)):
        groups.setdefault(run.dataset, []).append(run)
    aligned = {}
    for dataset, group in groups.items():
        try:
            records = align([r.dynamics for r in group], intersect=intersect)
        except ValueError as exc:
            raise RunsError(
                f"dataset {dataset}: {exc}. Pass runs.intersect=true to analyse the samples "
                "common to all runs"
            ) from exc
        aligned[dataset] = [replace(r, dynamics=d) for r, d in zip(group, records, strict=True)]
    return aligned


def load_wandb_runs(project: str, group: str, entity: str | None, cache_dir: str | Path) -> Found:
    """The `dynamics` artifacts of a W&B project/group, downloaded once into `cache_dir`."""
    import wandb

    try:
        api = wandb.Api(timeout=15)
        path = f"{entity}/{project}" if entity else project
        wb_runs = list(api.runs(path, filters={"group": group, "jobType": "train"}))
    except Exception as exc:  # noqa: BLE001 - any failure here means: W&B is not reachable
        raise RunsError(
            f"cannot read W&B project {project!r} group {group!r} ({type(exc).__name__}: {exc}). "
            "runs.source=wandb needs network access and a W&B login (wandb login or "
            "WANDB_API_KEY); offline, analyse the local run dirs with runs.source=local"
        ) from exc
    runs = []
    for wb_run in wb_runs:
        for artifact in wb_run.logged_artifacts():
            if artifact.type == DYNAMICS:
                where = Path(cache_dir) / artifact.name.replace(":", "_")
                if not (where / "meta.json").is_file():
                    artifact.download(root=str(where))
                dynamics = Dynamics.load(where)
                runs.append(_run(where, dynamics, [], dict(wb_run.config)))
    if not runs:
        raise RunsError(f"W&B project {project!r} group {group!r} has no dynamics artifacts")
    return Found(runs, [])
