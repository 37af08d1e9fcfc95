"""Preemption: a signal becomes a checkpoint at the next step boundary; resumed runs are exact."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY, compose_train

from forgetting import training
from forgetting.checkpoint import is_finished, load_checkpoint
from forgetting.dynamics import PER_EPOCH, PER_SAMPLE, Dynamics
from forgetting.preemption import Preempted, Preemption
from forgetting.train import run

TIMINGS = ("_seconds", "images_per_s")  # suffixes of the metrics that are timings


def test_a_signal_is_noted_then_passed_to_the_previous_handler() -> None:
    received = []
    previous = signal.signal(signal.SIGUSR1, lambda signum, frame: received.append(signum))
    try:
        with Preemption() as preemption:
            assert preemption.requested is None
            os.kill(os.getpid(), signal.SIGUSR1)
            os.kill(os.getpid(), signal.SIGTERM)  # a second signal changes nothing
            assert preemption.requested == signal.SIGUSR1 and received == []
            with pytest.raises(Preempted) as stopped:
                preemption.stop("after epoch 1")
        assert stopped.value.code == 128 + signal.SIGUSR1
        assert received == [signal.SIGUSR1]  # e.g. submitit's requeue handler
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # restored
    finally:
        signal.signal(signal.SIGUSR1, previous)


def _signal_at(monkeypatch: pytest.MonkeyPatch, calls: set[int], signum: int) -> None:
    """Send `signum` to this process during the given calls of the trainer's input step."""
    prepare, count = training.Trainer._prepare, [0]

    def signalling(self, x):  # noqa: ANN001, ANN202
        count[0] += 1
        if count[0] in calls:
            os.kill(os.getpid(), signum)
        return prepare(self, x)

    monkeypatch.setattr(training.Trainer, "_prepare", signalling)


def _metrics(run_dir: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in row.items() if not k.endswith(TIMINGS)} for row in rows]


# Calls of the input step at which a signal arrives, counted from each restart. Eval tracking:
# 12 train batches (budget 1), then 6 eval and 2 test batches per epoch: twice in the first
# pass, then in an eval pass (the checkpoint is then the end of that epoch). Train tracking at
# budget 0.6: 12 warmup batches, 7 per fine-tuning epoch, 2 test batches: in the warmup pass
# twice, in a test pass, in a fine-tuning pass of the online sampler. The first case runs on the
# device data path (crops seeded per batch), the second through the DataLoader and its workers.
@pytest.mark.parametrize(("extra", "signum", "calls"), [
    (["dataset.device_cache=true"], signal.SIGUSR1, (3, 5, 30)),
    (["tracking.mode=train", "train.num_workers=2", "sampler=spaced_repetition_online",
      "sampler.budget=0.6", "dataset.device_cache=false"], signal.SIGTERM, (3, 5, 14, 6)),
])
def test_preempted_runs_resume_to_a_bit_identical_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, extra: list[str], signum: int,
    calls: tuple[int, ...],
) -> None:
    cfg = compose_train([*TINY, "train.epochs=2", "train.batch_size=128", *extra])
    reference = run(cfg, tmp_path / "reference")
    stops = []
    for call in calls:
        _signal_at(monkeypatch, {call}, signum)
        with pytest.raises(Preempted):
            run(cfg, tmp_path / "run")
        state = load_checkpoint(tmp_path / "run")
        stops.append((state["epoch"], state.get("partial", {}).get("batch")))
        assert not is_finished(tmp_path / "run")
    monkeypatch.undo()
    run(cfg, tmp_path / "run")
    assert any(batch for _, batch in stops) and len(set(stops)) == len(stops), stops
    a, b = Dynamics.load(reference / "dynamics"), Dynamics.load(tmp_path / "run" / "dynamics")
    for name in PER_SAMPLE + PER_EPOCH:
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    assert _metrics(reference) == _metrics(tmp_path / "run")
