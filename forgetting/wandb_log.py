"""The W&B adapter: every call is guarded, so a W&B failure is a warning and never a lost run."""

from __future__ import annotations

import functools
import hashlib
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def stable_run_id(run_dir: str | Path) -> str:
    """A W&B run id derived from the run dir, so a resumed run continues the same W&B run."""
    return hashlib.sha1(str(Path(run_dir).resolve()).encode()).hexdigest()[:16]


def _guarded(method: Callable) -> Callable:
    @functools.wraps(method)
    def wrapper(self: WandbLogger, *args: Any, **kwargs: Any) -> Any:
        if self.disabled:
            return None
        try:
            return method(self, *args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - W&B must never take a run down
            log.warning("W&B %s failed (%s: %s); continuing without W&B, the run dir keeps "
                        "the record", method.__name__, type(exc).__name__, exc)
            self.disabled = True
            return None

    return wrapper


class WandbLogger:
    """Logs metrics, the resolved config and artifacts to one W&B run."""

    def __init__(
        self,
        project: str = "forgetting",
        entity: str | None = None,
        mode: str | None = None,
        tags: list[str] | None = None,
        log_artifact: bool = True,
    ) -> None:
        self.project, self.entity, self.mode = project, entity, mode
        self.tags = list(tags or [])
        self.artifacts = log_artifact
        self.run: Any = None
        self.disabled = False

    @_guarded
    def start(
        self, run_dir: Path, name: str, group: str, job_type: str, config: dict[str, Any]
    ) -> None:
        import wandb

        self.run = wandb.init(
            project=self.project,
            entity=self.entity,
            mode=self.mode,
            group=group,
            job_type=job_type,
            name=name,
            id=stable_run_id(run_dir),
            resume="allow",
            config=config,
            tags=self.tags,
            dir=str(run_dir),
            settings=wandb.Settings(silent=True, console="off"),
        )
        self.run.define_metric("epoch")
        self.run.define_metric("*", step_metric="epoch")

    @_guarded
    def log(self, metrics: dict[str, Any]) -> None:
        if self.run is not None:
            self.run.log(metrics)

    @_guarded
    def log_artifact(self, path: Path, name: str, type: str, metadata: dict | None = None) -> None:
        import wandb

        if self.run is None or not self.artifacts:
            return
        artifact = wandb.Artifact(name=name, type=type, metadata=metadata)
        artifact.add_dir(str(path))
        self.run.log_artifact(artifact)

    @_guarded
    def log_tables(self, tables: dict[str, Any]) -> None:
        """Log pandas DataFrames as `wandb.Table`s."""
        import wandb

        if self.run is not None and tables:
            self.run.log({k: wandb.Table(dataframe=v) for k, v in tables.items()})

    @_guarded
    def log_images(self, images: dict[str, Path]) -> None:
        import wandb

        if self.run is not None and images:
            self.run.log({k: wandb.Image(str(v)) for k, v in images.items()})

    @_guarded
    def finish(self) -> None:
        if self.run is not None:
            self.run.finish()
            self.run = None


class NullLogger:
    """`logger=none`: the same interface, doing nothing."""

    def start(self, *args: Any, **kwargs: Any) -> None:
        """Log nothing."""

    def log(self, metrics: dict[str, Any]) -> None:
        """Log nothing."""

    def log_artifact(self, *args: Any, **kwargs: Any) -> None:
        """Log nothing."""

    def log_tables(self, tables: dict[str, Any]) -> None:
        """Log nothing."""

    def log_images(self, images: dict[str, Path]) -> None:
        """Log nothing."""

    def finish(self) -> None:
        """Nothing to close."""
