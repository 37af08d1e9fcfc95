"""Which training samples each epoch presents, and in what order (DESIGN section 6)."""

from __future__ import annotations

from typing import Any

import numpy as np


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
