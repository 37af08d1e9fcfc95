"""Against a real one-node SLURM cluster (scripts/local_slurm, root on Debian): the demo study as
job arrays through Hydra's submitit launcher, a submission error, and a job requeued mid-run.

`.ci/run` runs these after the default suite (`pytest -m slurm`). Every SLURM command runs under a
hard timeout: without accounting, submitit waits forever for a job that died without a result.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, cli

from forgetting.checkpoint import is_finished
from forgetting.dynamics import PER_EPOCH, PER_SAMPLE, Dynamics

pytestmark = pytest.mark.slurm
BASH = shutil.which("bash")
# small jobs that fit the CI node (2 cores): one core and 3 GB each, 16 px digits
JOBS = "hydra.launcher.cpus_per_task=1 hydra.launcher.mem_gb=3 hydra.launcher.timeout_min=20"
TIMINGS = ("_seconds", "images_per_s")  # suffixes of the metrics that are timings


@pytest.fixture(scope="module")
def cluster() -> None:
    if os.geteuid() != 0 or not Path("/etc/debian_version").exists():
        pytest.skip("starting a local SLURM cluster needs root on Debian (scripts/local_slurm)")
    subprocess.run([BASH, str(REPO / "scripts/local_slurm/start.sh")], check=True, timeout=600)
    yield
    subprocess.run([BASH, str(REPO / "scripts/local_slurm/stop.sh")], timeout=120)


def multirun(tmp_path: Path, extra: str, timeout: int = 1200) -> subprocess.CompletedProcess:
    env = {**os.environ, "LAUNCHER": "slurm", "OUTPUTS": str(tmp_path), "SEEDS": "0,1",
           "PYTHON": sys.executable, "EXTRA": extra, "ANALYSIS_EXTRA": "logger=none"}
    return subprocess.run(["timeout", str(timeout), BASH, str(REPO / "multirun.sh"), "--demo"],
                          cwd=tmp_path, env=env, capture_output=True, text=True)


def test_the_demo_study_runs_as_slurm_job_arrays(cluster: None, tmp_path: Path) -> None:
    result = multirun(tmp_path, f"train.epochs=1 dataset.image_size=32 {JOBS}")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    full, matched = tmp_path / "demo", tmp_path / "demo-budget0.5"
    grid = [(full, arch, "random", seed)
            for arch in ("resnet18", "deit_tiny", "efficientnet_lite0") for seed in (0, 1)]
    grid += [(matched, "resnet18", sampler, seed)
             for sampler in ("random", "spaced_repetition") for seed in (0, 1)]
    for folder, arch, sampler, seed in grid:
        assert is_finished(folder / "digits" / arch / sampler / f"seed{seed}"), (arch, sampler)
    # every run went through sbatch: one submitit folder per array task, with its SLURM log
    logs = [*full.glob(".submitit/*/*_log.out"), *matched.glob(".submitit/*/*_log.out")]
    assert len(logs) == len(grid)
    reports = {name: next((tmp_path / "analysis" / name).glob("*/report.md")).read_text()
               for name in ("demo", "demo-budget0.5")}
    assert "## digits (6 runs)" in reports["demo"]
    assert "## digits (4 runs)" in reports["demo-budget0.5"]
    assert "spaced_repetition minus random" in reports["demo-budget0.5"]
    results = next((tmp_path / "analysis" / "demo").glob("*/results.json")).read_text()
    assert json.loads(results)


def test_a_submission_error_shows_slurms_message_and_starts_nothing(
    cluster: None, tmp_path: Path
) -> None:
    result = multirun(tmp_path, f"hydra.launcher.partition=no_such_partition {JOBS}", timeout=300)
    assert result.returncode != 0
    assert "sbatch: error: invalid partition specified: no_such_partition" in result.stderr
    assert "stage 1" in result.stderr and "== stage 2" not in result.stdout
    assert not (tmp_path / "demo" / "digits").exists()


def _wait(condition, timeout: float, what: str) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def _scontrol(*args: str) -> str:
    return subprocess.run(["scontrol", *args], check=True, capture_output=True, text=True,
                          timeout=30).stdout


def test_a_job_requeued_mid_run_resumes_to_the_uninterrupted_record(
    cluster: None, tmp_path: Path
) -> None:
    args = ["experiment=demo", "seed=0", "train.epochs=6", "dataset.image_size=16"]
    reference = cli([*args, f"hydra.run.dir={tmp_path}/reference"], cwd=tmp_path, timeout=900)
    assert reference.returncode == 0, reference.stderr
    sweep = tmp_path / "slurm"
    launch = subprocess.Popen(
        ["timeout", "900", sys.executable, "-m", "forgetting.train", "-m", *args,
         "hydra/launcher=slurm", *JOBS.split(), f"hydra.sweep.dir={sweep}"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    run_dir = sweep / "digits" / "resnet18" / "random" / "seed0"
    metrics = run_dir / "metrics.jsonl"
    _wait(lambda: metrics.exists() and len(metrics.read_text().splitlines()) >= 2, 300,
          "two epochs of the SLURM job")
    job = next(p.name for p in (sweep / ".submitit").iterdir() if p.name.isdigit())
    _scontrol("requeue", job)
    # a requeued job is held for about two minutes before it may start again: skip the wait
    _wait(lambda: "JobState=PENDING" in _scontrol("show", "job", job), 60, "the requeue")
    _scontrol("update", f"jobid={job}", "StartTime=now")
    output, _ = launch.communicate(timeout=900)
    assert launch.returncode == 0, output[-3000:]
    assert re.search(r"Restarts=1\b", _scontrol("show", "job", job))
    log = (run_dir / "train.log").read_text()
    assert "received SIGTERM" in log and "checkpoint written" in log and "resuming" in log
    a = Dynamics.load(tmp_path / "reference" / "dynamics")
    b = Dynamics.load(run_dir / "dynamics")
    for name in PER_SAMPLE + PER_EPOCH:
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    strip = [[{k: v for k, v in json.loads(line).items() if not k.endswith(TIMINGS)}
              for line in (d / "metrics.jsonl").read_text().splitlines()]
             for d in (tmp_path / "reference", run_dir)]
    assert strip[0] == strip[1]
