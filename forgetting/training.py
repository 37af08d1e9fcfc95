"""The training loop: warmup, fine-tuning, the dynamics record, checkpoints (epoch, preemption)."""

from __future__ import annotations

import contextlib
import logging
import random
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import hydra
import numpy as np
import timm
import torch
import torch.nn.functional as F
from omegaconf import DictConfig
from torch import nn
from torch.utils.data import DataLoader, Dataset, get_worker_info

from forgetting import __version__, checkpoint
from forgetting.config import device_cache_mode
from forgetting.console import progress
from forgetting.data import DataBundle
from forgetting.data.device import Batch, DeviceSplit, resident_splits
from forgetting.dynamics import Dynamics, Recorder, sample_stats
from forgetting.models import (
    backbone_parameters,
    freeze_backbone,
    head_parameters,
    set_train_mode,
    to_device,
    use_channels_last,
)
from forgetting.preemption import Preemption

log = logging.getLogger(__name__)
Consumer = Callable[[torch.Tensor, torch.Tensor], None]


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def epoch_seed(seed: int, epoch: int) -> int:
    """The torch seed of one epoch: a resumed run draws what an uninterrupted one would."""
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])


def batch_seed(seed: int, epoch: int, batch: int) -> int:
    """The augmentation seed of one batch on the device path: a function of its position only."""
    return int(np.random.SeedSequence([seed, epoch, batch]).generate_state(1)[0])


def batches(order: np.ndarray, batch_size: int) -> list[list[int]]:
    """Split an epoch's order into batches; a last batch of one joins the previous (BatchNorm)."""
    chunks = [order[i : i + batch_size].tolist() for i in range(0, len(order), batch_size)]
    if len(chunks) > 1 and len(chunks[-1]) == 1 and batch_size > 1:
        chunks[-2].extend(chunks.pop())
    return chunks


def n_batches(size: int, batch_size: int) -> int:
    """len(batches(order, batch_size)) for an order of `size` samples."""
    count = -(-size // batch_size)
    return count - 1 if count > 1 and size % batch_size == 1 and batch_size > 1 else count


def balanced_accuracy(labels: np.ndarray, preds: np.ndarray) -> float:
    """Mean per-class recall over the classes present in `labels`."""
    classes, inverse = np.unique(labels, return_inverse=True)
    hits = np.bincount(inverse, weights=(preds == labels), minlength=len(classes))
    return float(np.mean(hits / np.bincount(inverse, minlength=len(classes))))


def macro_f1(labels: np.ndarray, preds: np.ndarray) -> float:
    """Mean per-class F1 over the classes present in `labels` or `preds` (scikit-learn's macro)."""
    classes, inverse = np.unique(np.concatenate([labels, preds]), return_inverse=True)
    true, pred = inverse[: len(labels)], inverse[len(labels):]
    k = len(classes)
    hits = np.bincount(true[true == pred], minlength=k)
    support = np.bincount(true, minlength=k) + np.bincount(pred, minlength=k)
    return float(np.mean(2 * hits / support))


class SeededSamples(Dataset):
    """A training view whose augmentation of each sample is a function of (epoch seed, index).

    The random resized crop and flip draw from Python's `random` and torch's default generator;
    seeding both per sample makes batch b of an epoch independent of the batches before it and
    of the DataLoader's workers, so a run resumed in the middle of an epoch draws what an
    uninterrupted one would. In the main process torch's generator is restored afterwards
    (dropout and drop-path draw from it in the step).
    """

    def __init__(self, dataset: Dataset, seed: int) -> None:
        self.dataset, self.seed = dataset, seed

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> Any:
        seed = (self.seed + index * 0x9E3779B97F4A7C15) % 2**63
        generator = torch.default_generator
        saved = generator.get_state() if get_worker_info() is None else None
        random.seed(seed)
        generator.manual_seed(seed)
        try:
            return self.dataset[index]
        finally:
            if saved is not None:
                generator.set_state(saved)


def class_weights(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """`balanced` weights n / (K * n_k) of the classes present; 0 for a class with no samples."""
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    present = counts > 0
    weights = np.zeros(num_classes)
    weights[present] = len(labels) / (present.sum() * counts[present])
    return weights


class Trainer:
    """Runs (or resumes) one training run and returns its dynamics record."""

    def __init__(
        self, cfg: DictConfig, data: DataBundle, model: nn.Module, sampler: Any, logger: Any,
        run_dir: Path,
    ) -> None:
        self.cfg, self.data, self.sampler, self.logger, self.run_dir = (
            cfg, data, sampler, logger, run_dir)
        self.device = resolve_device(cfg.train.device)
        self.channels_last = use_channels_last(self.device, cfg.arch.get("channels_last"))
        self.model = to_device(model, self.device, self.channels_last)
        self.net = torch.compile(self.model) if cfg.train.compile else self.model
        data_cfg = timm.data.resolve_model_data_config(model)
        self.mean = torch.tensor(data_cfg["mean"], device=self.device).view(1, -1, 1, 1)
        self.std = torch.tensor(data_cfg["std"], device=self.device).view(1, -1, 1, 1)
        self.warmup_epochs = int(cfg.train.warmup_epochs)
        self.n_epochs = self.warmup_epochs + int(cfg.train.epochs)
        self.recorder = Recorder(data.labels, self.n_epochs, str(cfg.tracking.float_dtype.value),
                                 self.device)
        self.tracking = cfg.tracking.mode.value
        self.resident: dict[str, DeviceSplit] | None = None
        self.epoch = 0
        self.history: list[dict[str, Any]] = []
        self.optimizer: torch.optim.Optimizer | None = None
        self.scheduler: Any = None
        self.phase: str | None = None
        self.last_correct = np.full(len(data.labels), -1, np.int8)
        self.preemption = Preemption()
        self.partial: dict[str, Any] | None = None  # where a preempted epoch stopped
        self.epoch_lrs: dict[str, float] = {}  # the learning rates at the epoch's start
        self.class_weights = None
        if cfg.train.class_weights.value == "balanced":
            self.class_weights = torch.as_tensor(
                class_weights(data.labels, data.num_classes), dtype=torch.float32,
                device=self.device)

    @property
    def data_path(self) -> str:
        """`device` (splits resident on the device, augmented there) or `loader` (DataLoader)."""
        return "loader" if self.resident is None else "device"

    def fit(self) -> Dynamics:
        """Train to the end; on a preemption signal, checkpoint at a step boundary and exit."""
        with self.preemption:
            state = None
            if checkpoint.has_checkpoint(self.run_dir):
                state = checkpoint.load_checkpoint(self.run_dir)
            self._place_data(None if state is None else state.get("data_path"))
            if state is not None:
                self._resume(state)
            elif self.warmup_epochs == 0 and self.tracking != "none":
                self._warmup_loss_pass()
            for epoch in progress(range(self.epoch, self.n_epochs), desc="epochs",
                                  initial=self.epoch, total=self.n_epochs):
                metrics = self._run_epoch(epoch)
                self.history.append(metrics)
                self.epoch = epoch + 1
                checkpoint.save_checkpoint(self.run_dir, self._state())
                checkpoint.write_metrics(self.run_dir, self.history)
                self.logger.log(metrics)
                log.info("epoch %d/%d %s", epoch + 1, self.n_epochs, _brief(metrics))
                if self.preemption.requested and self.epoch < self.n_epochs:
                    self.preemption.stop(f"after epoch {self.epoch}")
        return self.recorder.to_dynamics(self.data.sample_keys, self._meta())

    def _run_epoch(self, epoch: int) -> dict[str, Any]:
        warmup = epoch < self.warmup_epochs
        self._enter_phase("warmup" if warmup else "finetune")
        partial, self.partial = self.partial, None
        if partial is None:
            torch.manual_seed(epoch_seed(self.cfg.seed, epoch))  # dropout, drop path
            order = self.sampler.order(epoch, warmup)
            self.recorder.mark_presented(epoch, order)
        else:
            order = partial["order"]
            _set_rng_state(partial["rng"])
        lrs = partial["lrs"] if partial else {
            f"lr_{g['name']}": g["lr"] for g in self.optimizer.param_groups}
        self.epoch_lrs = lrs
        start = time.perf_counter()
        train = self._train_pass(epoch, order, warmup, partial)
        train_seconds = time.perf_counter() - start
        if self.tracking == "eval":
            self._predict("train_eval", lambda i, z: self.recorder.record(epoch, i, z))
        self.recorder.flush()
        record_seconds = time.perf_counter() - start - train_seconds
        if epoch == self.warmup_epochs - 1 and self.tracking != "none":
            self._set_warmup_loss(epoch)
        self.sampler.observe(epoch, self.recorder.arrays["correct"],
                             self.recorder.arrays["observed"])
        held_out = self._evaluate("test")
        if self.data.val is not None:
            held_out.update(self._evaluate("val"))
        return {
            "epoch": epoch + 1, "phase": self.phase, **train, **self._forgetting(epoch),
            **held_out, **lrs,
            "presented": int(len(order)), "epoch_seconds": time.perf_counter() - start,
            "train_seconds": train_seconds, "record_seconds": record_seconds,
            "images_per_s": len(order) / max(train_seconds, 1e-9),
        }

    def _train_pass(self, epoch: int, order: np.ndarray, warmup: bool,
                    partial: dict[str, Any] | None = None) -> dict[str, float]:
        """One pass over `order` (from batch `partial["batch"]` of a preempted pass); the step
        has no host sync (the sums are read at the end)."""
        set_train_mode(self.model, backbone_frozen=warmup)
        batch_list = batches(order, self.cfg.train.batch_size)
        step = partial["batch"] if partial else 0
        loss_sum = torch.tensor(partial["loss_sum"] if partial else 0.0, device=self.device)
        hits = torch.tensor(partial["hits"] if partial else 0, device=self.device)
        for x, y, idx in progress(self._batches("train", batch_list, epoch, step),
                                  desc=f"train {epoch + 1}", leave=False,
                                  initial=step, total=len(batch_list)):
            with self._autocast():
                logits = self.net(self._prepare(x))
            loss = F.cross_entropy(logits.float(), y, weight=self.class_weights)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            self.scheduler.step()
            if self.tracking == "train":
                self.recorder.record(epoch, idx, logits)
            loss_sum += loss.detach() * len(y)
            hits += (logits.detach().argmax(1) == y).sum()
            step += 1
            if self.preemption.requested and step < len(batch_list):
                self._save_partial(epoch, order, step, loss_sum, hits)
                self.preemption.stop(f"in epoch {epoch + 1} after batch {step} of "
                                     f"{len(batch_list)}")
        return {"train_loss": loss_sum.item() / len(order), "train_acc": hits.item() / len(order)}

    def _predict(self, split: str, consume: Consumer) -> None:
        """An inference-mode eval pass over the split `split` in order (eval batch size);
        `consume(index, logits)` per batch, both on the device."""
        self.model.eval()
        order = np.arange(len(getattr(self.data, split)))
        batch_list = batches(order, self.cfg.train.eval_batch_size)
        with torch.inference_mode():
            for x, _, idx in progress(self._batches(split, batch_list, 0), total=len(batch_list),
                                      desc="eval", leave=False):
                with self._autocast():
                    logits = self.net(self._prepare(x))
                consume(idx, logits.float())

    def _evaluate(self, split: str) -> dict[str, float]:
        """`<split>_acc`, `<split>_balanced_acc` and `<split>_macro_f1` of a held-out split."""
        dataset = getattr(self.data, split)
        on_device = torch.empty(len(dataset), dtype=torch.long, device=self.device)

        def keep(idx: torch.Tensor, logits: torch.Tensor) -> None:
            on_device[idx] = logits.argmax(1)

        self._predict(split, keep)
        preds = on_device.cpu().numpy()
        labels = np.asarray(dataset.labels)
        return {f"{split}_acc": float(np.mean(preds == labels)),
                f"{split}_balanced_acc": balanced_accuracy(labels, preds),
                f"{split}_macro_f1": macro_f1(labels, preds)}

    def _set_warmup_loss(self, epoch: int) -> None:
        if self.tracking == "eval":
            self.recorder.warmup_loss = self.recorder.arrays["loss"][epoch].astype(np.float32)
        else:
            self._warmup_loss_pass()

    def _warmup_loss_pass(self) -> None:
        """Eval loss of every training sample now (the end of head warmup)."""
        targets = self.recorder.targets
        losses = torch.full((len(targets),), float("nan"), device=self.device)

        def keep(idx: torch.Tensor, logits: torch.Tensor) -> None:
            losses[idx] = sample_stats(logits, targets[idx])["loss"]

        self._predict("train_eval", keep)
        self.recorder.warmup_loss = losses.cpu().numpy()

    def _forgetting(self, epoch: int) -> dict[str, float]:
        """Forgetting events this epoch (vs each sample's last observation) and fraction correct."""
        observed = self.recorder.arrays["observed"][epoch]
        correct = self.recorder.arrays["correct"][epoch]
        events = int(np.sum(observed & (self.last_correct == 1) & ~correct))
        self.last_correct[observed] = correct[observed]
        return {"forgetting_events": events, "frac_correct": float(np.mean(self.last_correct == 1))}

    def _enter_phase(self, phase: str) -> None:
        if phase == self.phase:
            return
        warmup = phase == "warmup"
        freeze_backbone(self.model, frozen=warmup)
        lr = self.cfg.arch.lr
        groups = [{"name": "head", "params": head_parameters(self.model), "lr": lr.head}]
        if not warmup:
            groups.append({"name": "backbone", "params": backbone_parameters(self.model),
                           "lr": lr.backbone})
        n_epochs = self.warmup_epochs if warmup else self.cfg.train.epochs
        steps = n_epochs * n_batches(self.sampler.epoch_size(warmup), self.cfg.train.batch_size)
        self.optimizer = hydra.utils.instantiate(self.cfg.train.optimizer)(
            groups, weight_decay=self.cfg.train.weight_decay)
        self.scheduler = hydra.utils.instantiate(self.cfg.train.scheduler)(
            self.optimizer, T_max=max(steps, 1))
        self.phase = phase

    def _place_data(self, previous: str | None) -> None:
        """Move the splits to the device (`dataset.device_cache`); a resumed `auto` run keeps
        the path it started on, so its augmentation, and its record, stay the same."""
        mode = device_cache_mode(self.cfg.dataset)
        if mode == "auto" and previous is not None:
            mode = "true" if previous == "device" else "false"
        splits = {"train": self.data.train, "train_eval": self.data.train_eval,
                  "test": self.data.test, "val": self.data.val}
        sources = {name: getattr(ds, "in_memory", lambda: None)()
                   for name, ds in splits.items() if ds is not None}
        self.resident = resident_splits(sources, self.device, mode)
        log.info("data path: %s (dataset.device_cache=%s)", self.data_path, mode)

    def _batches(self, split: str, batch_list: list[list[int]], epoch: int,
                 start_batch: int = 0) -> Iterator[Batch]:
        """`(images, labels, index)` batches of a split from `start_batch` on; labels and index
        on the device, images too on the device path (else moved by `_prepare`)."""
        if self.resident is not None:
            seed = int(self.cfg.seed)
            yield from self.resident[split].batches(
                batch_list, lambda b: batch_seed(seed, epoch, b), start_batch)
            return
        dataset = getattr(self.data, split)
        if split == "train":
            dataset = SeededSamples(dataset, epoch_seed(self.cfg.seed, epoch))
        for x, y, idx in self._loader(dataset, batch_list[start_batch:], epoch):
            yield (x, y.to(self.device, non_blocking=True),
                   torch.as_tensor(idx).to(self.device, non_blocking=True))

    def _loader(self, dataset: Dataset, batch_list: list[list[int]], epoch: int) -> DataLoader:
        workers = int(self.cfg.train.num_workers)
        return DataLoader(
            dataset, batch_sampler=batch_list, num_workers=workers,
            pin_memory=self.device.type == "cuda",
            generator=torch.Generator().manual_seed(epoch_seed(self.cfg.seed, epoch)),
            persistent_workers=False,
        )

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 (0..255) or float ([0, 1]) images -> normalised floats on the device."""
        x = x.to(self.device, non_blocking=True)
        x = x.float().div_(255.0) if x.dtype == torch.uint8 else x.float()
        x = (x - self.mean) / self.std
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _save_partial(self, epoch: int, order: np.ndarray, step: int, loss_sum: torch.Tensor,
                      hits: torch.Tensor) -> None:
        """Checkpoint the middle of epoch `epoch`: everything needed to continue at `step`."""
        partial = {"epoch": epoch, "batch": step, "order": order, "rng": _rng_state(),
                   "loss_sum": loss_sum.item(), "hits": hits.item(), "lrs": self.epoch_lrs}
        checkpoint.save_checkpoint(self.run_dir, {**self._state(), "partial": partial})

    def _state(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch, "phase": self.phase, "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
            "sampler": self.sampler.state_dict(), "recorder": self.recorder.state_dict(),
            "history": self.history, "data_path": self.data_path,
        }

    def _resume(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.recorder.load_state_dict(state["recorder"])
        self.sampler.load_state_dict(state["sampler"])
        self.history, self.epoch = state["history"], state["epoch"]
        next_phase = "warmup" if self.epoch < self.warmup_epochs else "finetune"
        if state["phase"] == next_phase:
            self._enter_phase(next_phase)
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
        for epoch in range(self.epoch):
            self._forgetting(epoch)
        self.partial = state.get("partial")
        where = f"batch {self.partial['batch']} of epoch {self.epoch + 1}" if self.partial else (
            f"epoch {self.epoch}")
        log.info("resuming %s after %s of %d", self.run_dir, where, self.n_epochs)

    def _meta(self) -> dict[str, Any]:
        cfg = self.cfg
        return {
            "dataset": self.data.name, "arch": cfg.arch.name, "model_name": cfg.arch.model_name,
            "sampler": cfg.sampler.name, "seed": int(cfg.seed), "experiment": cfg.experiment,
            "tracking_mode": self.tracking, "data_path": self.data_path,
            "warmup_epochs": self.warmup_epochs,
            "epochs": self.n_epochs,
            "phases": ["warmup"] * self.warmup_epochs + ["finetune"] * int(cfg.train.epochs),
            "class_names": self.data.class_names, "split": self.data.split,
            "package_version": __version__, "git_commit": _git_commit(),
            **{f"final_{k}": v for k, v in self.history[-1].items()
               if k.startswith(("test_", "val_"))},
            "class_weights": cfg.train.class_weights.value, "excluded": self.data.excluded,
            "timings": {"epoch_seconds": [m["epoch_seconds"] for m in self.history],
                        "total_seconds": float(sum(m["epoch_seconds"] for m in self.history))},
        }


def _brief(metrics: dict[str, Any]) -> str:
    keys = ("train_loss", "train_acc", "test_acc", "forgetting_events")
    return " ".join(f"{k}={metrics[k]:.4g}" if isinstance(metrics[k], float) else
                    f"{k}={metrics[k]}" for k in keys)



def _git_commit() -> str | None:
    """The commit of the source tree this package runs from, if it is a git checkout."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent,
                             capture_output=True, text=True, timeout=5, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def _rng_state() -> dict[str, Any]:
    """torch's generators (CPU, and CUDA when present): what dropout and drop path draw from."""
    state = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["cpu"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
