"""Samplers end to end: resume after a crash for every sampler, a 2-arm sweep + its analysis."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, TINY, cli, compose_train

from forgetting import checkpoint
from forgetting.config import ConfigError
from forgetting.dynamics import PER_EPOCH, PER_SAMPLE, Dynamics
from forgetting.samplers import budget_count
from forgetting.train import run

# tracking.mode=train: only presented samples are observed (the online sampler's "no estimate")
STUDY = TINY + ["train.epochs=3", "sampler.budget=0.4", "tracking.mode=train"]


class Crash(Exception):
    pass


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished random run: the static sampler's reference."""
    run_dir = tmp_path_factory.mktemp("ref") / "digits" / "resnet18" / "random" / "seed0"
    return run(compose_train(STUDY), run_dir=run_dir)


@pytest.mark.parametrize("name", ["spaced_repetition", "spaced_repetition_online", "leitner"])
def test_crashed_run_resumes_to_a_bit_identical_record(
    name: str, reference: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = compose_train([*STUDY, f"sampler={name}", "sampler.budget=0.4"]
                        + ([f"sampler.reference={reference}"] if name == "spaced_repetition"
                           else []))
    whole = run(cfg, run_dir=tmp_path / "whole")
    write_metrics, calls = checkpoint.write_metrics, []

    def crash_after_two_epochs(run_dir: Path, history: list) -> None:
        write_metrics(run_dir, history)  # the epoch's checkpoint is on disk: then it dies
        calls.append(1)
        if len(calls) == 2:  # warmup + one fine-tuning epoch
            raise Crash

    monkeypatch.setattr(checkpoint, "write_metrics", crash_after_two_epochs)
    with pytest.raises(Crash):
        run(cfg, run_dir=tmp_path / "run")
    assert not checkpoint.is_finished(tmp_path / "run")
    monkeypatch.setattr(checkpoint, "write_metrics", write_metrics)
    run(cfg, run_dir=tmp_path / "run")  # a fresh sampler, restored from the checkpoint
    a, b = Dynamics.load(whole / "dynamics"), Dynamics.load(tmp_path / "run" / "dynamics")
    for field in PER_SAMPLE + PER_EPOCH:
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field), err_msg=field)
    assert a.presented[1:].sum(1).tolist() == [budget_count(0.4, 1437)] * 3
    assert a.presented[0].all() and a.meta["sampler"] == name
    random = Dynamics.load(reference / "dynamics")
    assert not np.array_equal(a.presented, random.presented)


def test_static_sampler_without_its_reference_fails_before_training(tmp_path: Path) -> None:
    run_dir = tmp_path / "digits" / "resnet18" / "spaced_repetition" / "seed0"
    with pytest.raises(ConfigError, match=r"no finished reference run.*random/seed0"):
        run(compose_train([*STUDY, "sampler=spaced_repetition"]), run_dir=run_dir)
    assert not (run_dir / "checkpoint.pt").exists()


def test_two_arm_sweep_through_the_cli_then_the_sampler_comparison(tmp_path: Path) -> None:
    sweep = tmp_path / "sampler_study"
    out = cli(["-m", "experiment=sampler_study", "sampler=random,spaced_repetition", "seed=0",
               f"hydra.sweep.dir={sweep}", *TINY, "train.epochs=2"], cwd=REPO)
    assert out.returncode == 0, out.stderr
    for arm in ("random", "spaced_repetition"):
        for seed in (0,):
            record = Dynamics.load(sweep / "digits" / "resnet18" / arm / f"seed{seed}" / "dynamics")
            assert record.presented[1:].sum(1).tolist() == [budget_count(0.5, 1437)] * 2
    analysis = subprocess.run(
        [sys.executable, "-m", "forgetting.analyze", f"runs.root={sweep}",
         "analysis=sampler_comparison", "logger=none", f"hydra.run.dir={tmp_path}/analysis"],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    assert analysis.returncode == 0, analysis.stderr
    results = json.loads((tmp_path / "analysis" / "results.json").read_text())
    section = results["datasets"]["digits"]["sampler_comparison"]
    assert section["skipped"] is None
    assert "resnet18/spaced_repetition" in json.dumps(section)
