import shutil
from pathlib import Path

import numpy as np
import pytest

from forgetting.dynamics import Dynamics
from forgetting.runs import RunsError, by_dataset, find_runs, load_wandb_runs
from forgetting.synthetic import Plan, write_runs

PLAN = Plan(n_samples=200, archs=("resnet18", "deit_small"), seeds=(0, 1), never_learned=4,
            arch_overlap=10)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    write_runs(tmp_path, PLAN)
    return tmp_path / PLAN.experiment


def test_finds_filters_and_lists_unfinished(root: Path) -> None:
    unfinished = root / "synthetic" / "resnet18" / "random" / "seed7"
    unfinished.mkdir(parents=True)
    (unfinished / "checkpoint.pt").write_bytes(b"")
    found = find_runs(root)
    assert len(found.runs) == 4 and found.unfinished == [unfinished]
    only = find_runs(root, {"arch": ["deit_small"], "seed": [1]}).runs
    assert [(r.arch, r.seed) for r in only] == [("deit_small", 1)]
    assert only[0].final["test_acc"] == pytest.approx(0.71)


def test_runs_without_a_record_are_skipped(root: Path) -> None:
    path = root / "synthetic" / "deit_small" / "random" / "seed1" / "dynamics"
    d = Dynamics.load(path, mmap=False)
    Dynamics(**{k: v for k, v in vars(d).items() if k != "meta"},
             meta={**d.meta, "tracking_mode": "none"}).save(path)
    assert len(find_runs(root).runs) == 3
    with pytest.raises(RunsError, match="1 with tracking.mode=none"):
        find_runs(root, {"seed": [1], "arch": ["deit_small"]})


def test_no_runs_names_the_root_and_the_layout(tmp_path: Path) -> None:
    with pytest.raises(RunsError, match=f"no finished runs under {tmp_path}.*dynamics/meta.json"):
        find_runs(tmp_path)
    with pytest.raises(RunsError, match="does not exist"):
        find_runs(tmp_path / "missing")


def test_runs_are_aligned_on_sample_keys(root: Path) -> None:
    (group,) = by_dataset(find_runs(root).runs).values()
    keys = group[0].dynamics.sample_keys
    for run in group[1:]:
        np.testing.assert_array_equal(run.dynamics.sample_keys, keys)


def test_different_sample_sets_need_intersect(root: Path) -> None:
    path = root / "synthetic" / "deit_small" / "random" / "seed1" / "dynamics"
    d = Dynamics.load(path, mmap=False)
    shutil.rmtree(path)
    keep = np.arange(d.n_samples) != 3
    Dynamics(**{k: (v[keep] if v.ndim == 1 else v[:, keep])
                for k, v in vars(d).items() if k != "meta"}, meta=d.meta).save(path)
    with pytest.raises(RunsError, match="runs.intersect=true"):
        by_dataset(find_runs(root).runs)
    (group,) = by_dataset(find_runs(root).runs, intersect=True).values()
    assert all(r.dynamics.n_samples == PLAN.n_samples - 1 for r in group)


def test_wandb_source_fails_clearly_offline(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")
    with pytest.raises(RunsError, match="runs.source=wandb needs network access"):
        load_wandb_runs("forgetting", "demo", None, tmp_path)
