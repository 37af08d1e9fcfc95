"""The dynamics record: per-sample x per-epoch training dynamics (DESIGN section 4)."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

SCHEMA_VERSION = 1
PER_SAMPLE = ("sample_keys", "labels", "warmup_loss")
PER_EPOCH = ("correct", "observed", "loss", "prob", "margin", "el2n", "pred", "presented")
FLOAT_FIELDS = ("loss", "prob", "margin", "el2n")


class RecordError(ValueError):
    """A dynamics record on disk is missing, incomplete or inconsistent."""


@dataclass
class Dynamics:
    """One run's record: `E x N` arrays (epoch axis first) plus per-sample arrays and `meta`."""

    sample_keys: np.ndarray
    labels: np.ndarray
    correct: np.ndarray
    observed: np.ndarray
    loss: np.ndarray
    prob: np.ndarray
    margin: np.ndarray
    el2n: np.ndarray
    pred: np.ndarray
    presented: np.ndarray
    warmup_loss: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.sample_keys)
        for name in PER_SAMPLE:
            if getattr(self, name).shape != (n,):
                raise RecordError(f"{name} has shape {getattr(self, name).shape}, expected ({n},)")
        shape = self.correct.shape
        for name in PER_EPOCH:
            if getattr(self, name).shape != shape or len(shape) != 2 or shape[1] != n:
                raise RecordError(
                    f"{name} has shape {getattr(self, name).shape}, expected (epochs, {n})"
                )

    @property
    def n_samples(self) -> int:
        return int(self.correct.shape[1])

    @property
    def n_epochs(self) -> int:
        return int(self.correct.shape[0])

    @property
    def warmup_epochs(self) -> int:
        """Number of leading head-warmup epochs (backbone frozen)."""
        return int(self.meta.get("warmup_epochs", 0))

    @property
    def class_names(self) -> list[str]:
        return list(self.meta.get("class_names", []))

    def save(self, path: str | Path) -> Path:
        """Write the record as a directory of `.npy` files plus `meta.json`, atomically."""
        path = Path(path)
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
        for name in PER_SAMPLE + PER_EPOCH:
            _write_npy(tmp / f"{name}.npy", np.asarray(getattr(self, name)))
        meta = {"schema_version": SCHEMA_VERSION, **self.meta}
        _write_bytes(tmp / "meta.json", json.dumps(meta, indent=2, default=_json_default).encode())
        replace_dir(tmp, path)
        return path

    @classmethod
    def load(cls, path: str | Path, mmap: bool = True) -> Dynamics:
        """Read a record written by `save`; `mmap` memory-maps the `E x N` arrays."""
        path = Path(path)
        meta_file = path / "meta.json"
        if not meta_file.is_file():
            raise RecordError(
                f"no dynamics record at {path}: {meta_file.name} is missing "
                "(a finished run dir holds dynamics/meta.json; was the run interrupted?)"
            )
        meta = json.loads(meta_file.read_text())
        if meta.get("schema_version") != SCHEMA_VERSION:
            raise RecordError(
                f"{meta_file} has schema_version {meta.get('schema_version')!r}; this version of "
                f"forgetting reads schema {SCHEMA_VERSION}"
            )
        arrays = {}
        for name in PER_SAMPLE + PER_EPOCH:
            file = path / f"{name}.npy"
            if not file.is_file():
                raise RecordError(f"dynamics record {path} is incomplete: {file.name} is missing")
            mode = "r" if mmap and name in PER_EPOCH else None
            arrays[name] = np.load(file, mmap_mode=mode, allow_pickle=False)
        return cls(**arrays, meta=meta)


def sample_stats(logits: torch.Tensor, targets: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-sample loss, true-class prob, margin, EL2N, prediction and correctness of a batch."""
    logits = logits.detach().float()
    targets = targets.long()
    log_p = F.log_softmax(logits, dim=1)
    p = log_p.exp()
    y = targets[:, None]
    true_logit = logits.gather(1, y).squeeze(1)
    others = logits.scatter(1, y, float("-inf"))
    onehot = torch.zeros_like(p).scatter_(1, y, 1.0)
    pred = logits.argmax(1)
    return {
        "loss": -log_p.gather(1, y).squeeze(1),
        "prob": p.gather(1, y).squeeze(1),
        "margin": true_logit - others.max(1).values,
        "el2n": torch.linalg.vector_norm(p - onehot, dim=1),
        "pred": pred,
        "correct": pred == targets,
    }


class Recorder:
    """The `E x N` record on the host, filled batch by batch, each sample at its dataset index.

    The epoch being recorded lives in preallocated rows on `device`, written without host syncs
    and copied to the host once: when the record is read (`arrays`, `state_dict`) or another
    epoch starts. A sample recorded twice in one epoch is refused then.
    """

    def __init__(self, labels: np.ndarray, n_epochs: int, float_dtype: str = "float32",
                 device: torch.device | str = "cpu") -> None:
        n = len(labels)
        self.labels = np.asarray(labels, dtype=np.int64)
        self.device = torch.device(device)
        self.targets = torch.as_tensor(self.labels, device=self.device)
        self._arrays: dict[str, np.ndarray] = {
            "correct": np.zeros((n_epochs, n), bool),
            "observed": np.zeros((n_epochs, n), bool),
            "pred": np.full((n_epochs, n), -1, np.int32),
            "presented": np.zeros((n_epochs, n), bool),
            **{k: np.full((n_epochs, n), np.nan, float_dtype) for k in FLOAT_FIELDS},
        }
        self.warmup_loss = np.full(n, np.nan, np.float32)
        self._epoch: int | None = None
        self._rows: dict[str, torch.Tensor] = {}
        self._count = torch.zeros(0, dtype=torch.int32)

    @property
    def arrays(self) -> dict[str, np.ndarray]:
        """The host record, including the epoch being recorded."""
        self.flush()
        return self._arrays

    def record(self, epoch: int, index: torch.Tensor, logits: torch.Tensor) -> None:
        """Store one batch's statistics for the samples at dataset positions `index`."""
        if epoch != self._epoch:
            self.flush()
            self._start(epoch)
        index = index.to(self.device, non_blocking=True)
        for name, value in sample_stats(logits, self.targets[index]).items():
            self._rows[name][index] = value
        self._count.index_add_(0, index, torch.ones_like(index, dtype=torch.int32))

    def _start(self, epoch: int) -> None:
        n, device = len(self.labels), self.device
        self._epoch = epoch
        self._rows = {
            "correct": torch.zeros(n, dtype=torch.bool, device=device),
            "pred": torch.zeros(n, dtype=torch.long, device=device),
            **{k: torch.zeros(n, device=device) for k in FLOAT_FIELDS},
        }
        self._count = torch.zeros(n, dtype=torch.int32, device=device)

    def flush(self) -> None:
        """Copy the epoch being recorded to the host record (one copy per field)."""
        if self._epoch is None:
            return
        epoch, self._epoch = self._epoch, None
        count = self._count.cpu().numpy()
        new = count > 0
        if (count > 1).any() or (self._arrays["observed"][epoch] & new).any():
            raise RuntimeError(f"a sample was recorded twice in epoch {epoch}")
        for name, row in self._rows.items():
            self._arrays[name][epoch, new] = row.cpu().numpy()[new]
        self._arrays["observed"][epoch, new] = True
        self._rows = {}

    def mark_presented(self, epoch: int, index: np.ndarray) -> None:
        self._arrays["presented"][epoch, index] = True

    def state_dict(self) -> dict[str, np.ndarray]:
        return {**self.arrays, "warmup_loss": self.warmup_loss}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        self.warmup_loss = state["warmup_loss"]
        self._arrays = {k: v for k, v in state.items() if k != "warmup_loss"}
        self._epoch, self._rows = None, {}

    def to_dynamics(self, sample_keys: np.ndarray, meta: dict[str, Any]) -> Dynamics:
        return Dynamics(
            sample_keys=np.asarray(sample_keys, dtype=str),
            labels=self.labels,
            warmup_loss=self.warmup_loss,
            meta=meta,
            **self.arrays,
        )


def replace_dir(src: Path, dst: Path) -> None:
    """Move the finished directory `src` to `dst`, replacing any previous `dst`."""
    old = dst.with_name(f".{dst.name}.old-{os.getpid()}")
    if dst.exists():
        os.replace(dst, old)
    os.replace(src, dst)
    _fsync_dir(dst.parent)
    if old.exists():
        shutil.rmtree(old)


def _write_npy(path: Path, array: np.ndarray) -> None:
    with open(path, "wb") as f:
        np.save(f, array, allow_pickle=False)
        f.flush()
        os.fsync(f.fileno())


def _write_bytes(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"cannot write {type(obj).__name__} to meta.json")
