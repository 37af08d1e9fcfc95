"""GPU check (through `benchmarks/gpu_check.sh`): throughput, one paper-shaped run, the study.

1. Train and eval images/s of resnet18 and deit_small at 224 px (random weights, 200 classes):
   bf16 autocast, channels_last, AdamW, batch 64 (eval 256), eager and `torch.compile`d.
2. One `experiment=paper`-shaped run: resnet18, 2 head-warmup + 30 fine-tuning epochs, batch 64,
   crops of area [0.35, 1] and flips, an eval pass over the training set (the record) and over the
   test set every epoch, checkpoints, on a synthetic CUB-sized dataset: 6,000 training and 5,800
   test JPEGs of 256 px in 200 classes, read through `dataset=imagefolder` (named cub200) with the
   decoded cache and the device data path.
3. The study's time (2 datasets x 2 archs x 3 seeds x 2 samplers, every run presenting all its
   training images, an upper bound for a budget below 1): the measured run scaled per arch and
   dataset by the measured eager throughputs (batch 64; OCTDL's batch 32 is not measured).

`--cpu`: the same at tiny sizes on the CPU (32 px, 40 + 40 images, 1 + 1 epochs, no compile), so
that a test can run the script anywhere.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import timm
import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_dir
from PIL import Image

from forgetting.config import config_dir, register_schemas
from forgetting.train import run

ARCHS = {"resnet18": "resnet18.a1_in1k", "deit_small": "deit_small_patch16_224.fb_in1k"}
# (training, evaluated per epoch: training set + held-out), from the published splits
STUDY = {"cub200": (5994, 5994 + 5794), "octdl": (1445, 1445 + 206 + 413)}
STUDY_RUNS_PER_CELL = 3 * 2  # seeds x samplers


@dataclass(frozen=True)
class Sizes:
    """What the check runs: full sizes on a GPU, tiny ones with --cpu."""

    image_size: int
    batch: int
    eval_batch: int
    steps: int
    warmup_steps: int
    train_images: int
    test_images: int
    classes: int
    jpeg_size: int
    epochs: tuple[int, int]
    compile: bool


GPU = Sizes(224, 64, 256, 30, 10, 6000, 5800, 200, 256, (2, 30), True)
CPU = Sizes(32, 8, 16, 3, 1, 40, 40, 4, 48, (1, 1), False)


def throughput(arch: str, sizes: Sizes, device: torch.device,
               compiled: bool) -> tuple[float, float]:
    """(train, eval) images/s of `arch` on random inputs, after warm-up steps (and compiling)."""
    kwargs = {"img_size": sizes.image_size} if arch == "deit_small" else {}
    model = timm.create_model(ARCHS[arch], pretrained=False, num_classes=200, **kwargs)
    model = model.to(device, memory_format=torch.channels_last)
    net = torch.compile(model) if compiled else model
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")

    def batch(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.randn(n, 3, sizes.image_size, sizes.image_size, device=device)
        return x.contiguous(memory_format=torch.channels_last), torch.randint(0, 200, (n,),
                                                                              device=device)

    x, y = batch(sizes.batch)

    def train_step() -> None:
        with autocast:
            loss = F.cross_entropy(net(x).float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    model.train()
    train = sizes.batch * timed(train_step, sizes, device)
    model.eval()
    x_eval, _ = batch(sizes.eval_batch)

    def eval_step() -> None:
        with torch.inference_mode(), autocast:
            net(x_eval)

    return train, sizes.eval_batch * timed(eval_step, sizes, device)


def timed(step: Callable[[], None], sizes: Sizes, device: torch.device) -> float:
    """Steps per second of `step` after its warm-up steps."""
    for _ in range(sizes.warmup_steps):
        step()
    synchronize(device)
    start = time.perf_counter()
    for _ in range(sizes.steps):
        step()
    synchronize(device)
    return sizes.steps / (time.perf_counter() - start)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def write_jpegs(root: Path, sizes: Sizes) -> None:
    """`train/` and `test/` trees of class-coloured noisy JPEGs (`<split>/c<k>/<i>.jpg`)."""
    rng = np.random.default_rng(0)
    colours = rng.integers(0, 256, (sizes.classes, 3))
    jobs = [(split, i) for split, n in (("train", sizes.train_images),
                                        ("test", sizes.test_images)) for i in range(n)]

    def one(job: tuple[str, int]) -> None:
        split, i = job
        label = i % sizes.classes
        noise = np.random.default_rng(i + (split == "test") * 10**6).normal(
            0, 40, (sizes.jpeg_size, sizes.jpeg_size, 3))
        pixels = np.clip(colours[label] + noise, 0, 255).astype(np.uint8)
        path = root / split / f"c{label:03d}" / f"{i:05d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(path, quality=90)

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        list(pool.map(one, jobs))


def paper_run(root: Path, sizes: Sizes, device: torch.device) -> dict[str, float | str]:
    """Seconds of one paper-shaped resnet18 run on the JPEG trees under `root`, and its split."""
    warmup, finetune = sizes.epochs
    overrides = [
        "experiment=paper", "arch=resnet18", "arch.pretrained=false", "dataset=imagefolder",
        "dataset.name=cub200", f"dataset.root={root / 'jpeg'}", "dataset.train_dir=train",
        "dataset.test_dir=test", f"dataset.image_size={sizes.image_size}", "dataset.cache=true",
        "dataset.cache_in_memory=true", f"train.warmup_epochs={warmup}",
        f"train.epochs={finetune}", f"train.device={device.type}", "logger=none",
    ]
    register_schemas()
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose("train", overrides=overrides)
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        run(cfg, run_dir=root / "run")
    total = time.perf_counter() - start
    epochs = [json.loads(line) for line in (root / "run" / "metrics.jsonl").open()]
    meta = json.loads((root / "run" / "dynamics" / "meta.json").read_text())
    sums = {key: sum(e[key] for e in epochs) for key in ("epoch_seconds", "train_seconds",
                                                         "record_seconds")}
    return {"total": total, "epochs": len(epochs), **sums, "data_path": meta["data_path"],
            "test_acc": epochs[-1]["test_acc"]}


def describe(result: dict, sizes: Sizes, written: float) -> str:
    """The paper run's line: total seconds, per-epoch split, data path."""
    n = result["epochs"]
    test = result["epoch_seconds"] - result["train_seconds"] - result["record_seconds"]
    return (f"paper run: resnet18, synthetic CUB-sized {sizes.train_images:,} train / "
            f"{sizes.test_images:,} test JPEGs at {sizes.jpeg_size} px, {sizes.classes} classes, "
            f"{n} epochs: {result['total']:.1f} s total ({result['epoch_seconds'] / n:.2f} s/epoch:"
            f" train {result['train_seconds'] / n:.2f}, record {result['record_seconds'] / n:.2f},"
            f" test {test / n:.2f}; setup and checkpoints "
            f"{result['total'] - result['epoch_seconds']:.1f} s), data path {result['data_path']}, "
            f"final test_acc {result['test_acc']:.3f} [JPEGs written in {written:.0f} s]")


def study_minutes(measured: float, rates: dict[str, tuple[float, float]], sizes: Sizes,
                  epochs: int) -> tuple[float, dict[str, float]]:
    """The study's minutes and each (dataset, arch) run's seconds: the measured run (resnet18 on
    the CUB-sized data) scaled by each cell's images per epoch over its arch's throughput."""

    def cost(arch: str, n_train: int, n_eval: int) -> float:
        train, evaluate = rates[arch]
        return n_train / train + n_eval / evaluate

    scale = measured / cost("resnet18", sizes.train_images, sizes.train_images + sizes.test_images)
    study_epochs = sum(GPU.epochs)
    per_run = {f"{dataset} {arch}": scale * cost(arch, *counts) * study_epochs / epochs
               for dataset, counts in STUDY.items() for arch in ARCHS}
    return STUDY_RUNS_PER_CELL * sum(per_run.values()) / 60, per_run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu", action="store_true", help="tiny sizes on the CPU")
    args = parser.parse_args()
    start = time.perf_counter()
    sizes, device = (CPU, torch.device("cpu")) if args.cpu else (GPU, torch.device("cuda"))
    if args.cpu:
        torch.set_num_threads(1)  # a smoke run: one thread stays steady on a busy small machine
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"gpu_check: {name}, torch {torch.__version__}, CUDA {torch.version.cuda}, "
          f"{os.cpu_count()} CPUs; bf16 autocast and channels_last on CUDA"
          + (" (--cpu: tiny sizes)" if args.cpu else ""), flush=True)
    rates = {}
    for arch in ARCHS:
        for compiled in (False, True):
            mode = "compile" if compiled else "eager"
            label = f"throughput {arch} {sizes.image_size}px {mode}:"
            if compiled and not sizes.compile:
                print(f"{label} skipped (--cpu)", flush=True)
                continue
            begin = time.perf_counter()
            train, evaluate = throughput(arch, sizes, device, compiled)
            rates.setdefault(arch, (train, evaluate))
            print(f"{label} train {train:,.0f} images/s (batch {sizes.batch}), eval "
                  f"{evaluate:,.0f} images/s (batch {sizes.eval_batch}) "
                  f"[{time.perf_counter() - begin:.0f} s]", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        begin = time.perf_counter()
        write_jpegs(root / "jpeg", sizes)
        written = time.perf_counter() - begin
        result = paper_run(root, sizes, device)
    print(describe(result, sizes, written), flush=True)
    minutes, per_run = study_minutes(result["total"], rates, sizes, result["epochs"])
    cells = ", ".join(f"{cell} {seconds:.0f} s" for cell, seconds in per_run.items())
    verdict = "met" if minutes < 30 else "NOT met"
    print(f"study estimate: {STUDY_RUNS_PER_CELL * len(per_run)} runs (2 datasets x 2 archs x "
          f"3 seeds x 2 samplers, budget 1): {minutes:.1f} min on this device, eager "
          f"(per run: {cells}); goal < 30 min: {verdict}", flush=True)
    print(f"gpu_check: done in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
