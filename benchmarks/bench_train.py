"""Benchmark: the trainer's loop against a minimal hand-written PyTorch loop, on the CPU.

Every variant trains timm's resnet18 (random init, 10 classes) on the 1,437 digits training images
upscaled to `--size` px (default 32), in memory and without augmentation so that all do the same
work, with AdamW and a cosine schedule at batch 64, for `--epochs` epochs (default 3, the first
left out as warm-up):

(a) our trainer, `tracking.mode=none` (the device data path: tensors indexed in memory);
(b) our trainer, `tracking.mode=train` (statistics of every training minibatch recorded);
(c) our trainer, `tracking.mode=eval` (plus an eval pass over the training set every epoch);
(d) a hand-written loop in this script: index, normalise, forward, cross-entropy, backward, step;
    after each epoch it also times a bare inference pass over the training set (batch 256).
(a') our trainer, tracking off, on the DataLoader path (`dataset.device_cache=false`), for scale.

The variants run in `--repeats` interleaved rounds (a, b, c, d, a', a, ...; default 5); within a
round each gives the median over its measured epochs, and the ratios are taken within the round,
so that a slow minute of a shared machine hits both sides of a ratio. Printed: the median over the
rounds of each variant's training images/s and of each ratio, with its range over the rounds.
Targets: (a)/(d) >= 0.97, (b)/(a) >= 0.98, and (c)'s extra time per epoch (its record pass:
the eval pass over the training set and the copy of the epoch's record to the host) <= 1.1 x the
bare pass.
`--threads` (default 1) torch threads: on a small shared machine another process's threads make
two-thread timings swing by 10x, while the ratios, which are what is measured, do not need them.

    python benchmarks/bench_train.py [--size 32] [--epochs 3] [--repeats 5] [--threads 1]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import timm
import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_dir

from forgetting.config import config_dir, register_schemas
from forgetting.data.digits import load_digits
from forgetting.train import run

BATCH, EVAL_BATCH, LR, WEIGHT_DECAY = 64, 256, 5e-4, 0.05
MEASURES = ("images_per_s", "record_seconds", "bare_seconds")
TRAINER = {"a": ["tracking.mode=none"], "b": ["tracking.mode=train"],
           "c": ["tracking.mode=eval"], "a'": ["tracking.mode=none", "dataset.device_cache=false"]}
LABELS = {"a": "(a)  trainer, tracking.mode=none ", "b": "(b)  trainer, tracking.mode=train",
          "c": "(c)  trainer, tracking.mode=eval ", "d": "(d)  hand-written loop          ",
          "a'": "(a') trainer, none, DataLoader   "}


def trainer_epochs(overrides: list[str], run_dir: Path) -> list[dict]:
    """Per-epoch metrics of one trainer run (training images/s, record pass seconds)."""
    register_schemas()
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose("train", overrides=[*overrides, "logger=none", "overwrite=true"])
    with contextlib.redirect_stdout(io.StringIO()):
        run(cfg, run_dir=run_dir)
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").open()]


def hand_written(images: torch.Tensor, labels: torch.Tensor, epochs: int) -> list[dict]:
    """A minimal training loop over in-memory tensors; per epoch its images/s and the seconds
    of a bare inference pass over the training set."""
    torch.manual_seed(0)
    model = timm.create_model("resnet18", num_classes=10)
    mean = torch.tensor(model.pretrained_cfg["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(model.pretrained_cfg["std"]).view(1, 3, 1, 1)
    optimizer = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)
    steps = epochs * -(-len(labels) // BATCH)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
    out = []
    for _ in range(epochs):
        model.train()
        start = time.perf_counter()
        for index in torch.randperm(len(labels)).split(BATCH):
            loss = F.cross_entropy(model((images[index] - mean) / std), labels[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
        train_seconds = time.perf_counter() - start
        model.eval()
        start = time.perf_counter()
        with torch.inference_mode():
            for index in torch.arange(len(labels)).split(EVAL_BATCH):
                model((images[index] - mean) / std)
        out.append({"images_per_s": len(labels) / train_seconds,
                    "bare_seconds": time.perf_counter() - start})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    os.environ.setdefault("FORGETTING_QUIET", "1")
    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True, warn_only=True)  # the trainer's default
    data = load_digits(image_size=args.size, augment=False)
    images, labels = data.train.images, data.train.labels
    common = ["arch=resnet18", "dataset=digits", f"dataset.image_size={args.size}",
              "dataset.augment=false", "train.warmup_epochs=0", f"train.epochs={args.epochs}",
              f"train.batch_size={BATCH}", f"train.eval_batch_size={EVAL_BATCH}",
              f"arch.lr.head={LR}", f"arch.lr.backbone={LR}", f"train.weight_decay={WEIGHT_DECAY}"]
    load_before = os.getloadavg()[0]
    rounds: list[dict[str, dict[str, float]]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(args.repeats):
            measured = {}
            for key in ("a", "b", "c", "d", "a'"):
                if key == "d":
                    done = hand_written(images, labels, args.epochs)
                else:
                    done = trainer_epochs([*common, *TRAINER[key]], Path(tmp) / f"{repeat}{key}")
                measured[key] = {name: statistics.median(e[name] for e in done[1:])
                                 for name in MEASURES if name in done[0]}
            rounds.append(measured)
    report(args, len(labels), rounds, load_before)


def ratios(measured: dict[str, dict[str, float]]) -> dict[str, float]:
    """The three target ratios within one round of the variants."""
    rate = {key: m["images_per_s"] for key, m in measured.items()}
    return {"(a)/(d)": rate["a"] / rate["d"], "(b)/(a)": rate["b"] / rate["a"],
            "(c) extra / bare pass": measured["c"]["record_seconds"]
            / measured["d"]["bare_seconds"],
            "(a)/(a')": rate["a"] / rate["a'"]}


def report(args: argparse.Namespace, n: int, rounds: list[dict], load_before: float) -> None:
    print(f"bench_train: resnet18, {n:,} digits at {args.size} px in memory, no augmentation, "
          f"batch {BATCH} (eval {EVAL_BATCH}), {args.epochs} epochs (first dropped) x "
          f"{args.repeats} interleaved rounds; torch {torch.__version__}, {args.threads} of "
          f"{os.cpu_count()} CPU threads; load average {load_before:.2f} before, "
          f"{os.getloadavg()[0]:.2f} after")

    def median(key: str, name: str) -> float:
        return statistics.median(r[key][name] for r in rounds)

    for key, label in LABELS.items():
        extra = {"c": f"   record pass {median('c', 'record_seconds'):.3f} s/epoch",
                 "d": f"   bare inference pass {median('d', 'bare_seconds'):.3f} s/epoch"}
        print(f"  {label} {median(key, 'images_per_s'):8.1f} images/s{extra.get(key, '')}")
    per_round = [ratios(r) for r in rounds]
    targets = {"(a)/(d)": (">=", 0.97), "(b)/(a)": (">=", 0.98),
               "(c) extra / bare pass": ("<=", 1.10), "(a)/(a')": None}
    for name, target in targets.items():
        values = [r[name] for r in per_round]
        value = statistics.median(values)
        line = f"  {name} = {value:.3f} (rounds {min(values):.3f}..{max(values):.3f})"
        if target is None:
            print(f"{line}   device path / DataLoader path")
            continue
        op, bound = target
        met = value >= bound if op == ">=" else value <= bound
        print(f"{line}   target {op} {bound}: {'met' if met else 'NOT met'}")


if __name__ == "__main__":
    main()
