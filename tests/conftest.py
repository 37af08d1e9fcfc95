"""Shared fixtures: offline, quiet, isolated W&B dirs; composing configs; running the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from forgetting.config import config_dir, register_schemas

REPO = Path(__file__).resolve().parents[1]
# Tiny but real: timm's test_resnet on 16 px digits, one warmup and one fine-tuning epoch.
TINY = [
    "arch.model_name=test_resnet", "dataset.image_size=16",
    "train.warmup_epochs=1", "train.epochs=1", "logger=none",
]


@pytest.fixture(autouse=True)
def offline_env(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    wandb_root = tmp_path_factory.mktemp("wandb")
    env = {
        "HF_HUB_OFFLINE": "1",
        "WANDB_MODE": "offline",
        "WANDB_SILENT": "true",
        "FORGETTING_QUIET": "1",
        **{f"WANDB_{k}_DIR": str(wandb_root / k.lower()) for k in ("DATA", "CACHE", "CONFIG")},
        "WANDB_DIR": str(wandb_root / "runs"),
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)


def compose_train(overrides: list[str]) -> DictConfig:
    """The config `python -m forgetting.train <overrides>` would see."""
    register_schemas()
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        return compose("train", overrides=overrides)


def cli(args: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run `python -m forgetting.train <args>` in `cwd` and capture its output."""
    return subprocess.run(
        [sys.executable, "-m", "forgetting.train", *args],
        cwd=cwd, capture_output=True, text=True, timeout=timeout, env={**os.environ},
    )
