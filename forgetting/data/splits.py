"""Seeded, stratified splits of samples or of groups of samples (patients), vectorised."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def assign_splits(
    strata: np.ndarray, fractions: Sequence[float], seed: int, sizes: np.ndarray | None = None
) -> np.ndarray:
    """The part of every unit: part k takes about `fractions[k]` of a stratum, the last the rest.

    Units (samples, or patients with `sizes` images each) are shuffled by `seed` within their
    stratum and laid end to end by size; a unit joins part k when its midpoint falls in the k-th
    fraction of the stratum's total size. Each stratum is split on its own, so every part keeps the
    strata's proportions as closely as whole units allow, and a stratum of one unit stays in the
    last part (the training split). Pass units in a canonical order (sorted identities): the result
    depends on that order, the fractions and `seed` only.
    """
    strata = np.asarray(strata)
    n = len(strata)
    sizes = np.ones(n) if sizes is None else np.asarray(sizes, dtype=np.float64)
    if n == 0:
        return np.zeros(0, np.int64)
    order = np.lexsort((np.random.default_rng(seed).random(n), strata))
    sorted_strata, sorted_sizes = strata[order], sizes[order]
    new = np.r_[True, sorted_strata[1:] != sorted_strata[:-1]]
    starts = np.flatnonzero(new)
    which = np.cumsum(new) - 1
    end = np.cumsum(sorted_sizes)
    offset = end - sorted_sizes - (end[starts] - sorted_sizes[starts])[which]
    total = np.add.reduceat(sorted_sizes, starts)[which]
    middle = (offset + sorted_sizes / 2) / total
    parts = np.empty(n, np.int64)
    parts[order] = np.searchsorted(np.cumsum(fractions), middle, side="right")
    return parts

