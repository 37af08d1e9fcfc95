from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY, compose_train

from forgetting.checkpoint import load_checkpoint
from forgetting.config import build
from forgetting.dynamics import Dynamics, Recorder, RecordError, sample_stats
from forgetting.train import TRAINER_KEYS, build_data, run


def brute_force_stats(logits: np.ndarray, label: int) -> dict[str, float]:
    """One sample's statistics, written out longhand in float64."""
    z = logits.astype(np.float64)
    p = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
    onehot = np.eye(len(z))[label]
    others = [z[k] for k in range(len(z)) if k != label]
    return {
        "loss": -np.log(p[label]), "prob": p[label], "margin": z[label] - max(others),
        "el2n": np.sqrt(((p - onehot) ** 2).sum()), "pred": int(np.argmax(z)),
        "correct": int(np.argmax(z)) == label,
    }


def test_sample_stats_match_brute_force() -> None:
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(40, 7, generator=gen) * 3
    labels = torch.randint(0, 7, (40,), generator=gen)
    stats = sample_stats(logits, labels)
    for i in range(40):
        expected = brute_force_stats(logits[i].numpy(), int(labels[i]))
        for name, value in expected.items():
            assert stats[name][i].item() == pytest.approx(value, rel=1e-5, abs=1e-6), name


def test_recorder_places_each_sample_at_its_index_and_refuses_duplicates() -> None:
    labels = np.array([0, 1, 2, 1, 0])
    rec = Recorder(labels, n_epochs=2)
    logits = torch.eye(3)[[1, 1, 0]] * 5  # predictions 1, 1, 0
    rec.record(1, torch.tensor([4, 3, 2]), logits)
    assert rec.arrays["observed"].tolist() == [[False] * 5, [False, False, True, True, True]]
    assert rec.arrays["pred"][1, [4, 3, 2]].tolist() == [1, 1, 0]
    assert rec.arrays["correct"][1, [4, 3, 2]].tolist() == [False, True, False]
    rec.record(1, torch.tensor([3]), logits[:1])  # checked when the epoch reaches the host
    with pytest.raises(RuntimeError, match="recorded twice in epoch 1"):
        rec.flush()
    rec.record(0, torch.tensor([0, 0]), logits[:2])
    with pytest.raises(RuntimeError, match="recorded twice in epoch 0"):
        rec.record(1, torch.tensor([0]), logits[:1])  # a new epoch flushes the last


def reference_record(labels: np.ndarray, batches: list, n_epochs: int,
                     float_dtype: str) -> dict[str, np.ndarray]:
    """The record as the host-only recorder wrote it: each batch's statistics copied at once."""
    n = len(labels)
    arrays = {"correct": np.zeros((n_epochs, n), bool), "observed": np.zeros((n_epochs, n), bool),
              "pred": np.full((n_epochs, n), -1, np.int32),
              **{k: np.full((n_epochs, n), np.nan, float_dtype)
                 for k in ("loss", "prob", "margin", "el2n")}}
    for epoch, index, logits in batches:
        stats = sample_stats(logits, torch.as_tensor(labels[index.numpy()]))
        for name, value in stats.items():
            arrays[name][epoch, index.numpy()] = value.numpy()
        arrays["observed"][epoch, index.numpy()] = True
    return arrays


@pytest.mark.parametrize("float_dtype", ["float32", "float16"])
def test_device_rows_give_the_host_recorder_arrays(float_dtype: str) -> None:
    gen = torch.Generator().manual_seed(1)
    labels = torch.randint(0, 6, (50,), generator=gen).numpy()
    batches = [(epoch, index, torch.randn(len(index), 6, generator=gen) * 4)
               for epoch in range(3) for index in torch.randperm(50, generator=gen)[:41].split(9)]
    rec = Recorder(labels, n_epochs=3, float_dtype=float_dtype)
    rec.record(*batches[0])
    rec.load_state_dict(rec.state_dict())  # a checkpoint within an epoch
    for batch in batches[1:]:
        rec.record(*batch)
    expected = reference_record(labels, batches, 3, float_dtype)
    for name, array in expected.items():
        np.testing.assert_array_equal(rec.arrays[name], array, err_msg=name)
        assert rec.arrays[name].dtype == array.dtype


@pytest.fixture(scope="module")
def eval_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("eval-run")
    return run(compose_train(TINY), run_dir=run_dir)


def test_eval_record_equals_brute_force_recomputation(eval_run: Path) -> None:
    """Reload the final model and recompute the last epoch's statistics sample by sample."""
    cfg = compose_train(TINY)
    record = Dynamics.load(eval_run / "dynamics")
    data = build_data(cfg)
    model = build(cfg.arch, exclude=TRAINER_KEYS, num_classes=data.num_classes)
    model.load_state_dict(load_checkpoint(eval_run)["model"])
    model.eval()
    mean = torch.tensor(model.pretrained_cfg["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(model.pretrained_cfg["std"]).view(1, 3, 1, 1)
    assert record.observed.all() and record.presented.all()
    for i in np.random.default_rng(0).choice(len(data.labels), 25, replace=False):
        x, y, index = data.train_eval[int(i)]
        assert index == i and record.sample_keys[i] == data.sample_keys[i]
        with torch.no_grad():
            logits = model((x[None] - mean) / std)[0].numpy()
        for name, value in brute_force_stats(logits, int(y)).items():
            got = getattr(record, name)[-1, i]
            assert got == pytest.approx(value, rel=1e-4, abs=1e-5), (name, i)


def test_warmup_loss_is_the_eval_loss_after_head_warmup(eval_run: Path) -> None:
    record = Dynamics.load(eval_run / "dynamics")
    assert record.warmup_epochs == 1
    np.testing.assert_array_equal(record.warmup_loss, record.loss[0].astype(np.float32))
    assert record.meta["phases"] == ["warmup", "finetune"]


def test_train_mode_records_every_presented_sample_once(tmp_path: Path) -> None:
    cfg = compose_train(TINY + ["tracking.mode=train", "train.num_workers=2",
                                "sampler.budget=0.5", "train.epochs=2"])
    record = Dynamics.load(run(cfg, run_dir=tmp_path) / "dynamics")
    np.testing.assert_array_equal(record.observed, record.presented)
    assert record.presented.sum(1).tolist() == [1437, 719, 719]  # round half up of 718.5
    assert not np.array_equal(record.presented[1], record.presented[2])
    assert np.isnan(record.loss[~record.observed]).all()
    assert np.isfinite(record.warmup_loss).all()
    # Training accuracy counted per batch equals the record's correctness at the same indices:
    # a sample recorded under the wrong index would be scored against the wrong label.
    metrics = [__import__("json").loads(line) for line in (tmp_path / "metrics.jsonl").open()]
    for t, m in enumerate(metrics):
        assert m["train_acc"] == pytest.approx(record.correct[t][record.observed[t]].mean())


def test_save_load_roundtrip_memory_maps(tmp_path: Path, eval_run: Path) -> None:
    record = Dynamics.load(eval_run / "dynamics", mmap=False)
    record.save(tmp_path / "copy")
    again = Dynamics.load(tmp_path / "copy")
    assert isinstance(again.loss, np.memmap)
    for name in ("sample_keys", "labels", "correct", "loss", "pred", "warmup_loss"):
        np.testing.assert_array_equal(getattr(again, name), getattr(record, name))
    assert again.meta == record.meta


def test_failed_save_keeps_the_previous_record(tmp_path: Path, eval_run: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    record = Dynamics.load(eval_run / "dynamics", mmap=False)
    target = record.save(tmp_path / "dynamics")
    calls = []

    def failing_save(f, array, allow_pickle):  # noqa: ANN001
        calls.append(1)
        if len(calls) == 4:
            raise OSError("disk full")
        return original(f, array, allow_pickle=allow_pickle)

    original = np.save
    monkeypatch.setattr(np, "save", failing_save)
    with pytest.raises(OSError, match="disk full"):
        record.save(target)
    monkeypatch.undo()
    np.testing.assert_array_equal(Dynamics.load(target).loss, record.loss)


def test_load_names_what_is_missing(tmp_path: Path, eval_run: Path) -> None:
    with pytest.raises(RecordError, match="meta.json is missing"):
        Dynamics.load(tmp_path)
    Dynamics.load(eval_run / "dynamics", mmap=False).save(tmp_path / "d")
    (tmp_path / "d" / "margin.npy").unlink()
    with pytest.raises(RecordError, match="margin.npy is missing"):
        Dynamics.load(tmp_path / "d")
