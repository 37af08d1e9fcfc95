"""Which training samples each epoch presents, and in what order (DESIGN section 6)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from forgetting.config import ConfigError
from forgetting.dynamics import Dynamics, RecordError
from forgetting.retention import fit_decay, retention_traces, summarise


def budget_count(budget: float, n_samples: int) -> int:
    """`round(budget * N)` (halves round up), at least one sample."""
    return max(1, min(n_samples, int(np.floor(budget * n_samples + 0.5))))


def epoch_rng(seed: int, epoch: int, stream: int = 0) -> np.random.Generator:
    """A generator that depends only on (seed, epoch, stream): resumed runs draw the same."""
    return np.random.default_rng([seed, epoch, stream])


class RandomSampler:
    """Uniform sampling: a full shuffled pass, or `round(budget * N)` distinct samples per epoch.

    Head-warmup epochs always present every sample; the budget applies to fine-tuning epochs.
    """

    learns_from_record = False  # whether `observe` uses the run's record (tracking.mode != none)

    def __init__(self, n_samples: int, seed: int, budget: float = 1.0) -> None:
        if not 0.0 < budget <= 1.0:
            raise ValueError(f"sampler.budget={budget} must lie in (0, 1]")
        self.n_samples = n_samples
        self.seed = seed
        self.budget = budget

    def order(self, epoch: int, warmup: bool) -> np.ndarray:
        """Dataset indices to present in `epoch`, in presentation order."""
        rng = epoch_rng(self.seed, epoch)
        if self.epoch_size(warmup) == self.n_samples:
            return rng.permutation(self.n_samples)
        return rng.choice(self.n_samples, self.epoch_size(warmup), replace=False)

    def epoch_size(self, warmup: bool) -> int:
        """How many samples `order` presents in a warmup or a fine-tuning epoch."""
        return self.n_samples if warmup else budget_count(self.budget, self.n_samples)

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Nothing to restore: every epoch's draw is a function of (seed, epoch)."""

    def observe(self, epoch: int, correct: np.ndarray, observed: np.ndarray) -> None:
        """Row `epoch` of the run's record `correct`, `observed` (E x N, the Trainer's arrays,
        filled up to `epoch`) is complete. Uniform sampling learns nothing from it."""


def _ranked(keys: tuple[np.ndarray, ...], count: int, seed: int, epoch: int) -> np.ndarray:
    """The `count` samples first in the lexicographic order of `keys` (earlier keys first),
    ties in a seeded random order, presented in a seeded random order.

    O(N): a partition on the first key; only the samples tied with the cut are sorted."""
    n = len(keys[0])
    tie = epoch_rng(seed, epoch, 1).permutation(n)
    cut = np.partition(keys[0], count - 1)[count - 1]
    sure, edge = np.flatnonzero(keys[0] < cut), np.flatnonzero(keys[0] == cut)
    rest = np.lexsort((tie[edge], *(key[edge] for key in reversed(keys[1:]))))
    chosen = np.concatenate([sure, edge[rest[: count - len(sure)]]])
    return chosen[epoch_rng(seed, epoch, 2).permutation(count)]


class _Scheduled(RandomSampler):
    """Warmup epochs and budget 1 present everyone; otherwise the `round(b N)` first by
    `_priority(epoch)`. Remembers the epoch each sample was last presented (state)."""

    def __init__(self, n_samples: int, seed: int, budget: float = 1.0) -> None:
        super().__init__(n_samples, seed, budget)
        self.last_presented = np.full(n_samples, -1, np.int64)
        self._presented = np.zeros(n_samples, bool)  # this epoch's (order -> observe)
        self._warmup = True

    def order(self, epoch: int, warmup: bool) -> np.ndarray:
        """Indices to present in `epoch`; call once per epoch (it updates `last_presented`)."""
        size = self.epoch_size(warmup)
        if size == self.n_samples:
            chosen = epoch_rng(self.seed, epoch).permutation(self.n_samples)
        else:
            chosen = _ranked(self._priority(epoch), size, self.seed, epoch)
        self.last_presented[chosen] = epoch
        self._presented[:] = False
        self._presented[chosen] = True
        self._warmup = warmup
        return chosen

    def _priority(self, epoch: int) -> tuple[np.ndarray, ...]:
        raise NotImplementedError

    def _retention_priority(self, lam: np.ndarray, epoch: int) -> tuple[np.ndarray, ...]:
        """Never-learned (lam +inf, or unestimated) first (-1), then the lowest predicted
        retention R = exp(-lam (t - last_presented)) in [0, 1]."""
        due = ~np.isfinite(lam)
        with np.errstate(invalid="ignore", over="ignore"):
            retention = np.exp(-np.where(due, 0.0, lam) * (epoch - self.last_presented))
        return (np.where(due, -1.0, retention),)

    def state_dict(self) -> dict[str, Any]:
        """Also this epoch's choice: a run checkpointed mid-epoch observes it at the end."""
        return {"last_presented": self.last_presented.copy(), "presented": self._presented.copy(),
                "warmup": self._warmup}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.last_presented = np.asarray(state["last_presented"], np.int64).copy()
        self._presented = np.asarray(state["presented"], bool).copy()
        self._warmup = bool(state["warmup"])


class SpacedRepetitionSampler(_Scheduled):
    """Static spaced repetition (the study's): decay constants `lam` (N,) of a reference run.

    Each fine-tuning epoch t presents the `round(b N)` samples with the lowest predicted
    retention `exp(-lam_i (t - last_presented_i))`: never-learned (lam = +inf) first, ties
    (e.g. the unforgettable, lam = 0, R = 1) in a seeded random order, which is the uniform fill.
    `lam` comes from `reference_decay` (train.py resolves `sampler.reference`).
    """

    def __init__(self, n_samples: int, seed: int, lam: np.ndarray, budget: float = 1.0) -> None:
        super().__init__(n_samples, seed, budget)
        lam = np.asarray(lam, np.float64)
        if lam.shape != (n_samples,):
            raise ValueError(f"lam has shape {lam.shape}, expected ({n_samples},)")
        self.lam = lam

    def _priority(self, epoch: int) -> tuple[np.ndarray, ...]:
        return self._retention_priority(self.lam, epoch)


def _code(values: np.ndarray) -> np.ndarray:
    """splitmix64 of non-negative integers: a fixed pseudo-random 64-bit code for each."""
    with np.errstate(over="ignore"):
        z = values.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


class OnlineDecay:
    """Per-sample lam of a growing record, updated one epoch at a time (as `summarise` computes
    it with its defaults: +inf never learned, 0 unforgettable, else the `exp` fit to the
    survival trace).

    A survival trace depends only on the sample's learning episodes: the lags at which they were
    forgotten and the censored lag of the one still running. Each sample carries an order-free
    64-bit signature of them (a sum of splitmix64 codes, updated in O(1) per observation). After
    an epoch, a sample whose signature changed takes the fit of a sample that holds the same
    signature with a known fit; the remaining signatures are fitted once each, from the record
    of one sample. The state is O(N): the record itself stays with the Trainer.
    """

    FIELDS = ("state", "began", "last_seen", "forgotten", "done", "lam")

    def __init__(self, n_samples: int) -> None:
        self.start = -1  # the first epoch of the record this estimates from
        self.state = np.full(n_samples, -1, np.int8)  # last observation: -1 none, 0, 1
        self.began = np.zeros(n_samples, np.int32)  # the running episode's first epoch
        self.last_seen = np.zeros(n_samples, np.int32)
        self.forgotten = np.zeros(n_samples, bool)  # at least one forgetting event
        self.done = np.zeros(n_samples, np.uint64)  # signature of the finished episodes
        self.lam = np.full(n_samples, np.inf)

    def update(self, epoch: int, correct: np.ndarray, observed: np.ndarray) -> None:
        """Take in row `epoch` of the record `correct`, `observed` (T x N; the rows from `start`
        to `epoch - 1` were taken in before)."""
        if self.start < 0:
            self.start = epoch
        seen = np.flatnonzero(observed[epoch])
        now = correct[epoch, seen]
        was = self.state[seen]
        forgot, learned = seen[(was == 1) & ~now], seen[(was != 1) & now]
        self.done[forgot] += _code(2 * (epoch - self.began[forgot]).astype(np.int64))
        self.forgotten[forgot] = True
        self.began[learned] = epoch
        self.state[seen] = now
        self.last_seen[seen] = epoch
        self.lam[learned[~self.forgotten[learned]]] = 0.0
        self.lam[seen[self.forgotten[seen] & (now | (was == 1))]] = np.nan  # signature changed
        self._refit(correct, observed, epoch)

    def signature(self, rows: np.ndarray) -> np.ndarray:
        """The episode signatures of `rows`: equal signatures, equal survival traces."""
        running = self.state[rows] == 1
        lag = (self.last_seen[rows] - self.began[rows]).astype(np.int64)
        return self.done[rows] + np.where(running, _code(2 * lag + 1), np.uint64(0))

    def _refit(self, correct: np.ndarray, observed: np.ndarray, epoch: int) -> None:
        """Fill the stale (NaN) lam from the signature groups, fitting one sample per group
        with no known fit."""
        rows = np.flatnonzero(self.forgotten)
        if not np.isnan(self.lam[rows]).any():
            return
        key = self.signature(rows)
        order = np.argsort(key)
        rows, key = rows[order], key[order]
        first = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
        lam = np.fmax.reduceat(self.lam[rows], first)
        fit = np.flatnonzero(np.isnan(lam))
        fit = fit[np.argsort(rows[first[fit]])]  # columns in index order: a cache-friendly gather
        rep, span = rows[first[fit]], slice(self.start, epoch + 1)
        lam[fit] = fit_decay(*retention_traces(correct[span][:, rep], observed[span][:, rep])).lam
        self.lam[rows] = np.repeat(lam, np.diff(np.r_[first, len(rows)]))

    def state_dict(self) -> dict[str, Any]:
        return {"start": self.start, **{name: getattr(self, name).copy() for name in self.FIELDS}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.start = int(state["start"])
        for name in self.FIELDS:
            setattr(self, name, np.asarray(state[name], getattr(self, name).dtype).copy())


class OnlineSpacedRepetitionSampler(_Scheduled):
    """Spaced repetition with `lam` re-estimated after every fine-tuning epoch from this run's
    own record so far (`OnlineDecay`: the fine-tuning epochs, warmup excluded); samples with
    no estimate yet are due first. The record is the Trainer's; the sampler keeps O(N) state."""

    learns_from_record = True

    def __init__(self, n_samples: int, seed: int, budget: float = 1.0) -> None:
        super().__init__(n_samples, seed, budget)
        self.decay = OnlineDecay(n_samples)

    @property
    def lam(self) -> np.ndarray:
        return self.decay.lam

    def observe(self, epoch: int, correct: np.ndarray, observed: np.ndarray) -> None:
        if not self._warmup:
            self.decay.update(epoch, correct, observed)

    def _priority(self, epoch: int) -> tuple[np.ndarray, ...]:
        return self._retention_priority(self.lam, epoch)

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "decay": self.decay.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.decay.load_state_dict(state["decay"])


class LeitnerSampler(_Scheduled):
    """Leitner queues (Amiri et al. 2017 style): decks 0..D-1, deck d is due every 2^d epochs.

    Every sample starts in deck 0. After each fine-tuning epoch a presented sample observed
    correct moves up one deck (at most D-1); any observed sample with a forgetting event (correct
    at its previous fine-tuning observation, incorrect now) drops to deck 0. Each epoch presents
    the `round(b N)` most overdue samples, by `(t - last_presented) / 2^deck` descending (the due
    ones have a ratio >= 1), then lower deck, then a seeded random order: the due decks are
    reviewed and the budget is filled with the next most overdue.
    """

    learns_from_record = True

    def __init__(self, n_samples: int, seed: int, budget: float = 1.0, decks: int = 5) -> None:
        super().__init__(n_samples, seed, budget)
        if decks < 1:
            raise ValueError(f"sampler.decks={decks} must be >= 1")
        self.decks = decks
        self.deck = np.zeros(n_samples, np.int64)
        self.last_correct = np.full(n_samples, -1, np.int8)

    def observe(self, epoch: int, correct: np.ndarray, observed: np.ndarray) -> None:
        if self._warmup:
            return
        correct, observed = correct[epoch], observed[epoch]
        promote = self._presented & observed & correct
        forgot = observed & (self.last_correct == 1) & ~correct
        self.deck[promote] = np.minimum(self.deck[promote] + 1, self.decks - 1)
        self.deck[forgot] = 0
        self.last_correct[observed] = correct[observed]

    def _priority(self, epoch: int) -> tuple[np.ndarray, ...]:
        overdue = (epoch - self.last_presented) / np.exp2(self.deck)
        return -overdue, self.deck

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "deck": self.deck.copy(),
                "last_correct": self.last_correct.copy()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.deck = np.asarray(state["deck"], np.int64).copy()
        self.last_correct = np.asarray(state["last_correct"], np.int8).copy()


# ---------------------------------------------------------------- the static reference


def reference_decay(
    reference: str, run_dir: Path, sample_keys: np.ndarray, dataset: str, arch: str, seed: int
) -> np.ndarray:
    """lam of the reference run, aligned to `sample_keys`; ConfigError when it is unusable.

    `reference`: a finished run dir, `auto` (the finished `random` run of the same experiment,
    dataset, arch and seed: `<run_dir>/../../random/seed<k>`), or a W&B artifact name
    `entity/project/name:version` holding a dynamics record.
    """
    run_dir = Path(run_dir)
    auto = reference == "auto"
    if auto:
        ref = run_dir.parent.parent / "random" / run_dir.name
    elif Path(reference).expanduser().exists():
        ref = Path(reference).expanduser()
    elif ":" in reference:
        ref = _download(reference)
    else:
        raise ConfigError(f"sampler.reference={reference} is neither a run dir, nor `auto`, nor "
                          "a W&B artifact name (entity/project/name:version)")
    record = ref / "dynamics" if (ref / "dynamics").is_dir() else ref
    try:
        dyn = Dynamics.load(record)
    except RecordError as exc:
        hint = (" (auto picks the finished `random` run of the same experiment, dataset, arch "
                "and seed: train it first)") if auto else ""
        raise ConfigError(f"sampler.reference={reference}: no finished reference run for "
                          f"{run_dir}: {exc}{hint}") from exc
    meta = dyn.meta
    if meta.get("dataset") != dataset:
        raise ConfigError(f"sampler.reference {ref} is a run on dataset {meta.get('dataset')!r}, "
                          f"but {run_dir} trains on {dataset!r}")
    if auto and (meta.get("arch"), meta.get("sampler"), meta.get("seed")) != (arch, "random", seed):
        raise ConfigError(f"sampler.reference=auto: {ref} is not the random run of arch {arch} "
                          f"seed {seed} (its meta says {meta.get('arch')}, "
                          f"{meta.get('sampler')}, seed {meta.get('seed')})")
    keys = np.asarray(sample_keys).astype(str)
    ref_keys = np.asarray(dyn.sample_keys).astype(str)
    if len(ref_keys) != len(keys) or not np.array_equal(np.sort(ref_keys), np.sort(keys)):
        raise ConfigError(
            f"sampler.reference {ref} has a different sample set ({len(ref_keys)} samples) than "
            f"{run_dir} ({len(keys)} samples of {dataset}): the reference must be a run on the "
            "same training samples")
    lam = summarise(dyn).lam
    at = np.argsort(ref_keys)
    return lam[at[np.searchsorted(ref_keys[at], keys)]]


def _download(name: str) -> Path:
    """Download a W&B dynamics artifact; ConfigError when offline or it cannot be fetched."""
    if os.environ.get("WANDB_MODE", "").lower() in ("offline", "disabled", "dryrun"):
        raise ConfigError(f"sampler.reference={name} is a W&B artifact, but W&B is offline "
                          f"(WANDB_MODE={os.environ['WANDB_MODE']}): pass a local run dir instead")
    try:
        import wandb

        return Path(wandb.Api().artifact(name).download())
    except Exception as exc:  # network, auth, missing artifact: all end the same way
        raise ConfigError(f"sampler.reference={name}: cannot download the W&B artifact "
                          f"({type(exc).__name__}: {exc}); pass a local run dir instead") from exc
