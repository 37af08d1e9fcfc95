"""The offline W&B run file holds the metrics, config, group/name and the dynamics artifact."""

import json
import logging
import time
from pathlib import Path

import pytest
from conftest import TINY, compose_train
from wandb_records import read_records

from forgetting.train import run
from forgetting.wandb_log import WandbLogger, stable_run_id

WANDB = [o for o in TINY if o != "logger=none"] + ["logger=wandb", "experiment=demo"]


def settled(path: Path, quiet: float = 1.0, timeout: float = 20.0) -> None:
    """Wait until W&B's service has stopped appending to `path` (its writer is asynchronous)."""
    deadline, size, since = time.monotonic() + timeout, -1, time.monotonic()
    while time.monotonic() < deadline:
        if path.stat().st_size != size:
            size, since = path.stat().st_size, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return
        time.sleep(0.1)


def records_by_type(run_dir: Path) -> dict[str, list]:
    (run_file,) = (run_dir / "wandb").glob("offline-run-*/run-*.wandb")
    settled(run_file)
    out: dict[str, list] = {}
    for record in read_records(run_file):
        out.setdefault(record.WhichOneof("record_type"), []).append(record)
    return out


def test_offline_run_file_holds_metrics_config_and_artifact(tmp_path: Path) -> None:
    cfg = compose_train(WANDB + ["train.epochs=2"])
    run(cfg, run_dir=tmp_path)
    records = records_by_type(tmp_path)
    (info,) = [r.run for r in records["run"]]
    assert info.run_id == stable_run_id(tmp_path)
    assert (info.run_group, info.job_type, info.display_name, info.project) == (
        "demo", "train", "digits-resnet18-random-s0", "forgetting")
    config = {item.key: json.loads(item.value_json) for item in info.config.update}
    assert config["arch"]["model_name"] == "test_resnet" and config["train"]["epochs"] == 2
    assert config["experiment"] == "demo" and config["logger"]["mode"] == "offline"
    history = [{i.key or "/".join(i.nested_key): i.value_json for i in r.history.item}
               for r in records["history"]]
    assert [h["epoch"] for h in history] == ["1", "2", "3"]
    for key in ("train_loss", "train_acc", "test_acc", "test_balanced_acc", "forgetting_events",
                "frac_correct", "lr_head", "epoch_seconds", "images_per_s"):
        assert all(key in h for h in history), key
    assert "lr_backbone" in history[-1]
    (artifact,) = [r.artifact for r in records["artifact"]]
    assert artifact.type == "dynamics"
    assert artifact.name == "dynamics-demo-digits-resnet18-random-s0"
    files = {entry.path for entry in artifact.manifest.contents}
    assert {"correct.npy", "loss.npy", "meta.json", "sample_keys.npy"} <= files


def test_wandb_failure_is_a_warning_not_a_lost_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    import wandb

    def broken_init(**kwargs: object) -> None:
        raise ConnectionError("W&B is down")

    monkeypatch.setattr(wandb, "init", broken_init)
    with caplog.at_level(logging.WARNING):
        run(compose_train(WANDB), run_dir=tmp_path)
    assert (tmp_path / "dynamics" / "meta.json").is_file()
    assert "W&B start failed (ConnectionError: W&B is down)" in caplog.text


def test_logger_after_failure_does_nothing() -> None:
    logger = WandbLogger(mode="disabled")
    logger.disabled = True
    assert logger.log({"epoch": 1}) is None and logger.finish() is None
