"""Benchmark: epoch seconds with and without `dataset.cache`, on the digits and on JPEG files.

1. the demo's digits (`dataset=digits`, in memory: the cache saves no decoding there);
2. the same digits written as `--jpeg-size` px JPEG files in train/ and test/ trees, read through
   `dataset=imagefolder` at the demo's 32 px: every uncached epoch decodes and resizes every image
   (three times: training pass, eval pass over the training set, test pass).
Prints the mean epoch seconds of each (all epochs, one run each) and the one-off cache build.

    python benchmarks/bench_cache.py [--arch resnet18] [--epochs 3] [--jpeg-size 256]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from hydra import compose, initialize_config_dir
from PIL import Image

from forgetting.config import config_dir, register_schemas
from forgetting.data.digits import load_digits
from forgetting.train import run


def write_jpegs(root: Path, size: int) -> None:
    """The digits' train and test splits as `<split>/<digit>/<index>.jpg` files of `size` px."""
    data = load_digits(image_size=size, augment=False)
    for split, dataset, keys in (("train", data.train_eval, data.sample_keys),
                                 ("test", data.test, None)):
        for i in range(len(dataset)):
            image, label, _ = dataset[i]
            name = keys[i].split("/")[1] if keys is not None else f"t{i:04d}"
            path = root / split / str(int(label)) / f"{name}.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            pixels = (image * 255).round().byte().permute(1, 2, 0).numpy()
            Image.fromarray(pixels).save(path, quality=90)


def epoch_seconds(overrides: list[str], run_dir: Path) -> tuple[float, float]:
    """(mean epoch seconds, seconds outside the epochs: data loading, cache build, model)."""
    register_schemas()
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose("train", overrides=[*overrides, "logger=none"])
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        run(cfg, run_dir=run_dir)
    total = time.perf_counter() - start
    epochs = [json.loads(line)["epoch_seconds"] for line in (run_dir / "metrics.jsonl").open()]
    return float(np.mean(epochs)), total - sum(epochs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="resnet18")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--jpeg-size", type=int, default=256)
    args = parser.parse_args()
    os.environ.setdefault("FORGETTING_QUIET", "1")
    common = [f"arch={args.arch}", "experiment=demo", "train.warmup_epochs=1",
              f"train.epochs={args.epochs - 1}"]
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        write_jpegs(tmp_path / "jpeg", args.jpeg_size)
        cases = {
            "digits, no cache": ["dataset=digits"],
            "digits, cache": ["dataset=digits", "dataset.cache=true",
                              f"dataset.cache_dir={tmp_path / 'cache'}"],
            f"{args.jpeg_size} px JPEGs, no cache": [
                "dataset=imagefolder", f"dataset.root={tmp_path / 'jpeg'}",
                "dataset.train_dir=train", "dataset.test_dir=test", "dataset.image_size=32"],
        }
        cases[f"{args.jpeg_size} px JPEGs, cache"] = [
            *cases[f"{args.jpeg_size} px JPEGs, no cache"], "dataset.cache=true",
            f"dataset.cache_dir={tmp_path / 'cache'}"]
        print(f"{args.arch}, {args.epochs} epochs (1 warmup), 1,437 training / 360 test images, "
              f"{os.cpu_count()} CPUs")
        for i, (name, overrides) in enumerate(cases.items()):
            mean, outside = epoch_seconds([*common, *overrides], tmp_path / f"run{i}")
            print(f"  {name:<26} {mean:6.2f} s per epoch   (+{outside:5.1f} s setup)")


if __name__ == "__main__":
    main()
