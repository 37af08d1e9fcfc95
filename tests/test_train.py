"""End-to-end through the CLI: multirun, kill-and-resume, skip, overwrite, run-dir overrides."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, TINY, cli, compose_train

from forgetting.checkpoint import RunDirError, is_finished
from forgetting.dynamics import PER_EPOCH, PER_SAMPLE, Dynamics
from forgetting.train import run

RESUME = TINY + ["train.epochs=4", "sampler.budget=0.7", "tracking.mode=train",
                 "dataset.device_cache=true"]


def metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").open()]


def test_multirun_over_seeds_creates_complete_run_dirs(tmp_path: Path) -> None:
    out = cli(["-m", "seed=0,1", f"hydra.sweep.dir={tmp_path}/sweep", *TINY], cwd=REPO)
    assert out.returncode == 0, out.stderr
    records = []
    for seed in (0, 1):
        run_dir = tmp_path / "sweep" / "digits" / "resnet18" / "random" / f"seed{seed}"
        assert {"config.yaml", "checkpoint.pt", "metrics.jsonl", "dynamics"} <= {
            p.name for p in run_dir.iterdir()}
        assert f"run dir: {run_dir}" in out.stdout
        record = Dynamics.load(run_dir / "dynamics")
        assert record.correct.shape == (2, 1437) and record.observed.all()
        assert record.meta["seed"] == seed and len(metrics(run_dir)) == 2
        records.append(record)
    np.testing.assert_array_equal(records[0].sample_keys, records[1].sample_keys)
    assert not np.array_equal(records[0].loss, records[1].loss)


def test_default_run_dir_is_deterministic_from_the_config(tmp_path: Path) -> None:
    out = cli([*TINY, "seed=3", "experiment=demo"], cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert is_finished(tmp_path / "outputs" / "demo" / "digits" / "resnet18" / "random" / "seed3")


def _kill_after(args: list[str], epochs_done: int, cwd: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "forgetting.train", *args], cwd=cwd,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    metrics_file = cwd / "run" / "metrics.jsonl"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        if metrics_file.exists() and len(metrics_file.read_text().splitlines()) >= epochs_done:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be killed; make it longer"
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def test_killed_run_resumes_to_a_bit_identical_record(tmp_path: Path) -> None:
    reference = cli([*RESUME, f"hydra.run.dir={tmp_path}/reference"], cwd=tmp_path)
    assert reference.returncode == 0, reference.stderr
    args = [*RESUME, f"hydra.run.dir={tmp_path}/run"]
    _kill_after(args, epochs_done=2, cwd=tmp_path)
    assert not is_finished(tmp_path / "run") and (tmp_path / "run" / "checkpoint.pt").exists()
    assert 2 <= len(metrics(tmp_path / "run")) < 5
    resumed = cli(args, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    a = Dynamics.load(tmp_path / "reference" / "dynamics")
    b = Dynamics.load(tmp_path / "run" / "dynamics")
    for name in PER_SAMPLE + PER_EPOCH:
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    strip = [[{k: v for k, v in m.items() if not k.endswith(("_seconds", "images_per_s"))}
              for m in metrics(d)]
             for d in (tmp_path / "reference", tmp_path / "run")]
    assert strip[0] == strip[1]
    again = cli(args, cwd=tmp_path)
    assert again.returncode == 0 and "already finished, skipped" in again.stdout


def test_overwrite_trains_a_finished_run_again(tmp_path: Path) -> None:
    cfg = compose_train(TINY)
    run(cfg, run_dir=tmp_path)
    first = (tmp_path / "dynamics" / "meta.json").stat().st_mtime_ns
    run(cfg, run_dir=tmp_path)
    assert (tmp_path / "dynamics" / "meta.json").stat().st_mtime_ns == first
    run(compose_train(TINY + ["overwrite=true"]), run_dir=tmp_path)
    assert (tmp_path / "dynamics" / "meta.json").stat().st_mtime_ns > first


def test_changed_config_is_not_resumed_silently(tmp_path: Path) -> None:
    run(compose_train(TINY), run_dir=tmp_path)
    with pytest.raises(RunDirError, match=r"train\.epochs: 1 -> 2.*overwrite=true"):
        run(compose_train(TINY + ["train.epochs=2"]), run_dir=tmp_path)
    run(compose_train(TINY + ["train.num_workers=1"]), run_dir=tmp_path)  # not result-changing
