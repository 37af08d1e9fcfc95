"""Preemption: SLURM's and submitit's signals become a checkpoint at the next step boundary.

SLURM signals a job before it ends it: SIGTERM when it is preempted, cancelled or requeued
(`scontrol requeue`), and the `--signal` of the job (submitit asks for SIGUSR2, or the signal in
`SUBMITIT_PREEMPT_SIGNAL`, e.g. USR1) ahead of its time limit. A handler only records the
signal; the trainer finishes the optimiser step it is in, writes its checkpoint atomically and
calls `stop()`, which hands the signal to the handler that was installed before ours (submitit's
requeues the job, then exits) and otherwise exits with 128 + the signal number. The requeued
job finds the checkpoint in its (deterministic) run dir and resumes from it.
"""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType
from typing import Any

log = logging.getLogger(__name__)
SIGNALS = (signal.SIGUSR1, signal.SIGUSR2, signal.SIGTERM)


class Preempted(SystemExit):
    """The run stopped at a step boundary after a preemption signal; its checkpoint is saved."""


class Preemption:
    """Context manager: while active, `requested` holds the first preemption signal received."""

    def __init__(self) -> None:
        self.requested: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> Preemption:
        if threading.current_thread() is threading.main_thread():
            for sig in SIGNALS:
                self._previous[sig] = signal.signal(sig, self._note)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def _note(self, signum: int, frame: FrameType | None) -> None:
        if self.requested is None:
            self.requested = signum
            log.warning("received %s: stopping after the current step to write a checkpoint",
                        signal.Signals(signum).name)

    def stop(self, where: str) -> None:
        """The checkpoint at `where` is written: pass the signal on, then exit."""
        signum = int(self.requested)
        name = signal.Signals(signum).name
        previous = self._previous.get(signum)
        self.__exit__()
        log.warning("%s: checkpoint written %s; exiting (re-run, or let SLURM requeue, to "
                    "resume)", name, where)
        if callable(previous):
            previous(signum, None)  # submitit's: requeue the job, then exit
        raise Preempted(128 + signum)
