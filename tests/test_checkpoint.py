from pathlib import Path

import pytest
from conftest import compose_train

from forgetting import checkpoint
from forgetting.checkpoint import RunDirError


def test_atomic_write_replaces_whole_files(tmp_path: Path) -> None:
    target = tmp_path / "f.txt"
    checkpoint.atomic_write(target, b"one")
    checkpoint.atomic_write(target, b"two")
    assert target.read_bytes() == b"two" and [p.name for p in tmp_path.iterdir()] == ["f.txt"]


def test_unwritable_run_dir_names_the_path_and_the_fix(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(RunDirError, match=r"file/run .*hydra\.run\.dir"):
        checkpoint.ensure_writable(tmp_path / "file" / "run")


def test_config_check_lists_result_changing_keys_only(tmp_path: Path) -> None:
    cfg = compose_train([])
    checkpoint.write_config(tmp_path, cfg)
    checkpoint.save_checkpoint(tmp_path, {"epoch": 1})
    checkpoint.check_same_config(tmp_path, compose_train(["train.num_workers=3", "logger=none"]))
    with pytest.raises(RunDirError, match=r"seed: 0 -> 1; train\.batch_size: 64 -> 32"):
        checkpoint.check_same_config(tmp_path, compose_train(["seed=1", "train.batch_size=32"]))


def test_unreadable_checkpoint_suggests_overwrite(tmp_path: Path) -> None:
    (tmp_path / checkpoint.CHECKPOINT).write_bytes(b"truncated")
    with pytest.raises(RunDirError, match="overwrite=true"):
        checkpoint.load_checkpoint(tmp_path)
