"""Figures of the report, written as PNG files (matplotlib, no display needed)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def _save(fig: plt.Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def retention_curves(curves: Mapping[str, np.ndarray], path: Path, title: str) -> Path:
    """Retention r(k) against lag k, one line per architecture."""
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for name, curve in curves.items():
        ax.plot(np.arange(len(curve)), curve, marker=".", label=name)
    ax.set(xlabel="epochs since learning (k)", ylabel="retention r(k)", ylim=(0, 1.02),
           title=title)
    ax.legend()
    return _save(fig, path)


def distributions(values: Mapping[str, np.ndarray], path: Path, xlabel: str, title: str,
                  log: bool = False) -> Path:
    """Overlaid histograms of one statistic per group (NaN and inf dropped)."""
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    finite = {k: np.asarray(v, float)[np.isfinite(v)] for k, v in values.items()}
    if log:
        finite = {k: np.log10(v[v > 0]) for k, v in finite.items()}
        xlabel = f"log10 {xlabel}"
    for name, v in finite.items():
        if v.size:
            ax.hist(v, bins=30, alpha=0.5, label=f"{name} (n={v.size})")
    ax.set(xlabel=xlabel, ylabel="samples", title=title)
    ax.legend()
    return _save(fig, path)


def heatmap(matrix: np.ndarray, labels: Sequence[str], path: Path, title: str) -> Path:
    fig, ax = plt.subplots(figsize=(1.2 + 0.55 * len(labels), 1.0 + 0.5 * len(labels)))
    im = ax.imshow(matrix, vmin=min(0.0, float(np.nanmin(matrix))), vmax=1.0, cmap="viridis")
    ax.set_xticks(range(len(labels)), labels, rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(len(labels)), labels, fontsize=7)
    for (i, j), v in np.ndenumerate(matrix):
        ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=6, color="w")
    fig.colorbar(im, ax=ax)
    ax.set_title(title)
    return _save(fig, path)


def class_bars(names: Sequence[str], values: Mapping[str, np.ndarray], path: Path,
               ylabel: str, title: str, most: int = 25) -> Path:
    """Per-class bars, one colour per architecture, classes sorted by the first one."""
    first = np.asarray(next(iter(values.values())), float)
    order = np.argsort(-np.nan_to_num(first, nan=-np.inf))[:most]
    fig, ax = plt.subplots(figsize=(max(5.5, 0.35 * len(order) + 2), 4.2))
    width = 0.8 / len(values)
    for j, (arch, v) in enumerate(values.items()):
        ax.bar(np.arange(len(order)) + j * width, np.asarray(v)[order], width, label=arch)
    ax.set_xticks(np.arange(len(order)) + 0.4 - width / 2, [names[i] for i in order],
                  rotation=60, ha="right", fontsize=7)
    ax.set(ylabel=ylabel, title=title)
    ax.legend()
    return _save(fig, path)


def data_map(variability: np.ndarray, confidence: np.ndarray, correctness: np.ndarray,
             path: Path, title: str) -> Path:
    """Dataset cartography: confidence against variability, coloured by fraction correct."""
    fig, ax = plt.subplots(figsize=(5, 4.2))
    sc = ax.scatter(variability, confidence, c=correctness, s=4, cmap="coolwarm_r", vmin=0, vmax=1)
    fig.colorbar(sc, ax=ax, label="fraction of epochs correct")
    ax.set(xlabel="variability (std of p_true)", ylabel="confidence (mean p_true)", title=title)
    return _save(fig, path)
