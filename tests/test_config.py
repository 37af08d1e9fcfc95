"""Bad overrides fail before any training and name the key; the wheel ships the configs."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, TINY, cli, compose_train

from forgetting.config import ConfigError, validate


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("arch=resnet1", ["arch/resnet1", "deit_small", "deit_tiny", "resnet18"]),
        ("dataset=mnistt", ["dataset/mnistt", "digits"]),
        ("experiment=paperr", ["experiment/paperr", "demo"]),
        ("train.epoch=3", ["train.epoch"]),
        ("train.epochs=three", ["train.epochs", "three"]),
        ("tracking.mode=both", ["tracking.mode", "eval", "train"]),
        ("train.epochs=0", ["train.epochs=0", ">= 1"]),
        ("train.epochs=-2", ["train.epochs=-2", ">= 1"]),
        ("sampler.budget=1.5", ["sampler.budget=1.5", "(0, 1]"]),
        ("sampler.budget=0", ["sampler.budget=0", "(0, 1]"]),
    ],
)
def test_bad_override_fails_before_training(tmp_path: Path, override: str,
                                            expected: list[str]) -> None:
    out = cli([*TINY, override, f"hydra.run.dir={tmp_path}/run"], cwd=tmp_path)
    assert out.returncode != 0
    for text in expected:
        assert text in out.stderr, out.stderr
    assert not (tmp_path / "run" / "checkpoint.pt").exists()
    assert not (tmp_path / "run" / "config.yaml").exists()


@pytest.mark.parametrize("key", ["train.warmup_epochs=-1", "train.batch_size=0",
                                 "train.num_workers=-1"])
def test_validate_names_the_key(key: str) -> None:
    with pytest.raises(ConfigError, match=key.replace("+", r"\+")):
        validate(compose_train([key]))


def test_unwritable_run_dir_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    out = cli([*TINY, f"hydra.run.dir={blocker}/run"], cwd=tmp_path)
    assert out.returncode != 0
    assert str(blocker) in out.stderr and "Not a directory" in out.stderr


def test_experiment_config_only_overrides() -> None:
    cfg = compose_train(["experiment=demo"])
    assert cfg.experiment == "demo" and cfg.train.epochs == 6
    assert compose_train([]).experiment == "default"


def test_wheel_ships_the_configs(tmp_path: Path) -> None:
    """Build the wheel, install it alone into a folder, run its console script from elsewhere."""
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path / "dist"), str(REPO)], capture_output=True, text=True)
    assert build.returncode == 0, build.stderr
    (wheel,) = (tmp_path / "dist").glob("forgetting-*.whl")
    site = tmp_path / "site"
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site),
         str(wheel)], capture_output=True, text=True)
    assert install.returncode == 0, install.stderr
    assert (site / "forgetting" / "conf" / "train.yaml").is_file()
    env = {**os.environ, "PYTHONPATH": str(site)}
    out = subprocess.run([str(site / "bin" / "forgetting-train"), "--cfg", "job", "arch=deit_tiny"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "model_name: deit_tiny_patch16_224.fb_in1k" in out.stdout
    where = subprocess.run([sys.executable, "-c", "import forgetting; print(forgetting.__file__)"],
                           cwd=tmp_path, env=env, capture_output=True, text=True)
    assert where.stdout.strip().startswith(str(site))


@pytest.mark.parametrize(("overrides", "expected"), [
    (["dataset=octdl", "dataset.val_fraction=0.9"], "leaves no training samples"),
    (["dataset=octdl", "dataset.test_fraction=-0.1"], "dataset.test_fraction=-0.1 is invalid"),
    (["dataset=cub200", "dataset.scale=[0.5,0.2]"], "dataset.scale=[0.5, 0.2] is invalid"),
    (["dataset=imagefolder"], "dataset.root is required"),
    (["experiment=paper", "arch=deit_tiny"], "recipe.arch.deit_tiny"),
    (["dataset.device_cache=maybe"], "dataset.device_cache=maybe is invalid: choose from auto"),
    (["dataset=cub200", "dataset.device_cache=true"], "dataset.device_cache=true needs "
                                                      "dataset.cache=true"),
    (["tracking.mode=none", "sampler=leitner"], "tracking.mode=none records nothing"),
])
def test_dataset_and_recipe_problems_name_the_key(overrides: list[str], expected: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(expected)):
        validate(compose_train(overrides))


def test_device_cache_takes_auto_and_booleans_from_the_command_line() -> None:
    for value in ("auto", "true", "false", "True"):
        validate(compose_train([f"dataset.device_cache={value}"]))
    validate(compose_train(["dataset=cub200", "dataset.cache=true", "dataset.device_cache=true"]))
    validate(compose_train(["tracking.mode=none", "sampler=random"]))


def test_class_weights_is_an_enum() -> None:
    assert compose_train(["train.class_weights=balanced"]).train.class_weights.value == "balanced"
    with pytest.raises(Exception, match="train.class_weights"):
        compose_train(["train.class_weights=inverse"])


@pytest.mark.parametrize("arch", ["resnet18", "deit_small", "efficientnet_lite0"])
@pytest.mark.parametrize("dataset", ["cub200", "octdl"])
def test_paper_recipe_has_a_row_for_each_arch_and_dataset(arch: str, dataset: str) -> None:
    cfg = compose_train(["experiment=paper", f"arch={arch}", f"dataset={dataset}"])
    validate(cfg)
    by_arch, by_data = cfg.recipe.arch[arch], cfg.recipe.dataset[dataset]
    assert cfg.experiment == "paper" and cfg.arch.pretrained and cfg.dataset.image_size == 224
    assert (cfg.arch.lr.head, cfg.arch.lr.backbone) == (by_arch.head_lr, by_arch.backbone_lr)
    assert cfg.train.weight_decay == by_arch.weight_decay
    assert cfg.train.epochs == by_data.epochs and cfg.train.batch_size == by_data.batch_size
    assert cfg.train.class_weights.value == by_data.class_weights
    assert cfg.arch.get("img_size") in (None, 224)


def test_paper_defaults_to_cub200_and_the_command_line_wins() -> None:
    assert compose_train(["experiment=paper"]).dataset.name == "cub200"
    assert compose_train(["experiment=paper", "dataset=octdl", "train.epochs=3"]).train.epochs == 3
