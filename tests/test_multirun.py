"""multirun.sh: the study's stages, their failure messages, re-runs, and bad launcher settings."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import REPO
from omegaconf import OmegaConf

from forgetting.checkpoint import is_finished

BASH = shutil.which("bash")
TINY = "train.epochs=1 dataset.image_size=16 arch.model_name=test_resnet logger=none"


def multirun(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    settings = {"OUTPUTS": str(tmp_path), "PYTHON": sys.executable, "ARCHS": "resnet18",
                "SEEDS": "0", "EXTRA": TINY, "ANALYSIS_EXTRA": "logger=none", **env}
    return subprocess.run([BASH, str(REPO / "multirun.sh"), *args], cwd=tmp_path,
                          env={**os.environ, **settings}, capture_output=True, text=True,
                          timeout=600)


def test_a_failing_stage_stops_the_study_and_a_rerun_skips_what_finished(tmp_path: Path) -> None:
    first = multirun(tmp_path, "--demo", SR_ARMS="no_such_sampler")
    assert first.returncode != 0
    assert "no_such_sampler" in first.stderr
    assert "stage 2 (train no_such_sampler x resnet18" in first.stderr
    assert "run the same command again" in first.stderr and "== stage 3" not in first.stdout
    run_dir = tmp_path / "demo" / "digits" / "resnet18" / "random" / "seed0"
    assert is_finished(run_dir)

    again = multirun(tmp_path, "--demo")
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"already finished, skipped (overwrite=true trains again): {run_dir}" in again.stdout
    arms = tmp_path / "demo-budget0.5" / "digits" / "resnet18"
    for sampler in ("random", "spaced_repetition"):  # compute-matched at budget 0.5
        config = OmegaConf.load(arms / sampler / "seed0" / "config.yaml")
        assert config.sampler.name == sampler and config.sampler.budget == 0.5
    (full,) = (tmp_path / "analysis" / "demo").glob("*/report.md")
    (matched,) = (tmp_path / "analysis" / "demo-budget0.5").glob("*/report.md")
    assert "## digits (1 runs)" in full.read_text()
    assert "spaced_repetition minus random" in matched.read_text()


def test_slurm_without_sbatch_fails_before_anything_runs(tmp_path: Path) -> None:
    tools = tmp_path / "bin"
    tools.mkdir()
    (tools / "dirname").symlink_to("/usr/bin/dirname")
    result = multirun(tmp_path, LAUNCHER="slurm", PATH=str(tools))
    assert result.returncode == 2
    assert "LAUNCHER=slurm but there is no sbatch on PATH" in result.stderr
    assert not (tmp_path / "paper").exists()


def test_bad_settings_are_named(tmp_path: Path) -> None:
    result = multirun(tmp_path, LAUNCHER="cluster")
    assert result.returncode == 2
    assert "LAUNCHER=cluster: choose basic, local or slurm" in result.stderr
    result = multirun(tmp_path, "--dmeo")
    assert result.returncode == 2 and "unknown argument '--dmeo'" in result.stderr
