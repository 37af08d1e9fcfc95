"""A run directory on disk: config, atomic checkpoints, metrics, and the finished/resume logic."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

CONFIG = "config.yaml"
CHECKPOINT = "checkpoint.pt"
METRICS = "metrics.jsonl"
DYNAMICS = "dynamics"
# Keys that may change between an interrupted run and its resumption without changing the result.
NON_IDENTITY = ("overwrite", "logger", "train.num_workers", "dataset.cache_dir",
                "dataset.cache_in_memory")


class RunDirError(RuntimeError):
    """The run directory cannot be used as asked; the message says why and what to do."""


def atomic_write(path: Path, data: bytes) -> None:
    """Write `data` to `path` through a temp file and a rename: never a half-written file."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def ensure_writable(run_dir: Path) -> None:
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write(run_dir / ".write-test", b"")
        (run_dir / ".write-test").unlink()
    except OSError as exc:
        raise RunDirError(
            f"cannot write to the run dir {run_dir} ({exc.strerror or exc}). Point hydra.run.dir "
            "(or hydra.sweep.dir for -m) at a writable directory."
        ) from exc


def is_finished(run_dir: Path) -> bool:
    return (run_dir / DYNAMICS / "meta.json").is_file()


def has_checkpoint(run_dir: Path) -> bool:
    return (run_dir / CHECKPOINT).is_file()


def clear(run_dir: Path) -> None:
    """Remove a previous run's outputs (for `overwrite=true`)."""
    for name in (CHECKPOINT, METRICS, CONFIG):
        (run_dir / name).unlink(missing_ok=True)
    shutil.rmtree(run_dir / DYNAMICS, ignore_errors=True)


def resolved(cfg: DictConfig) -> dict[str, Any]:
    return OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)  # type: ignore[return-value]


def check_same_config(run_dir: Path, cfg: DictConfig) -> None:
    """Refuse to resume or skip a run whose saved config differs in a result-changing key."""
    saved_file = run_dir / CONFIG
    if not saved_file.is_file() or not (has_checkpoint(run_dir) or is_finished(run_dir)):
        return
    saved = _flatten(OmegaConf.to_container(OmegaConf.load(saved_file)))
    now = _flatten(resolved(cfg))
    changed = [
        f"{k}: {saved.get(k)!r} -> {now.get(k)!r}"
        for k in sorted(set(saved) | set(now))
        if saved.get(k) != now.get(k) and not k.startswith(NON_IDENTITY)
    ]
    if changed:
        raise RunDirError(
            f"the run dir {run_dir} holds a run with another config ({'; '.join(changed)}). "
            "Pass overwrite=true to discard it and train again, or choose another experiment "
            "name or hydra.run.dir."
        )


def write_config(run_dir: Path, cfg: DictConfig) -> None:
    atomic_write(run_dir / CONFIG, OmegaConf.to_yaml(resolved(cfg)).encode())


def write_metrics(run_dir: Path, history: list[dict[str, Any]]) -> None:
    atomic_write(run_dir / METRICS, "".join(json.dumps(m) + "\n" for m in history).encode())


def save_checkpoint(run_dir: Path, state: dict[str, Any]) -> None:
    tmp = run_dir / f".{CHECKPOINT}.tmp-{os.getpid()}"
    with open(tmp, "wb") as f:
        torch.save(state, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, run_dir / CHECKPOINT)


def load_checkpoint(run_dir: Path) -> dict[str, Any]:
    try:
        return torch.load(run_dir / CHECKPOINT, map_location="cpu", weights_only=False)
    except Exception as exc:
        raise RunDirError(
            f"cannot read {run_dir / CHECKPOINT} ({type(exc).__name__}: {exc}); "
            "pass overwrite=true to start this run again"
        ) from exc


def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(tree, dict):
        return {prefix: tree}
    out: dict[str, Any] = {}
    for key, value in tree.items():
        out.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return out
