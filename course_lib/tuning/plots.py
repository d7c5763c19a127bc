"""Plots of a search: a heatmap over a two-hyperparameter grid, the spread of runs, curves."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .configs import short_text
from .search import SearchResult


def plot_heatmap(result: SearchResult, x: str, y: str, title: str | None = None, ax=None):
    """Mean validation metric for every (x, y) cell of a two-hyperparameter grid."""
    import matplotlib.pyplot as plt

    table = result.summary().pivot(index=y, columns=x, values=f"{result.metric}_mean")
    table = table.sort_index().sort_index(axis=1)
    if ax is None:
        _, ax = plt.subplots(figsize=(1.6 * table.shape[1] + 2.2, 0.9 * table.shape[0] + 1.6))
    image = ax.imshow(table.to_numpy(), cmap="viridis", aspect="auto")
    ax.set_xticks(range(table.shape[1]), [short_text(v) for v in table.columns])
    ax.set_yticks(range(table.shape[0]), [short_text(v) for v in table.index])
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    values = table.to_numpy()
    middle = np.nanmean(values)
    for i in range(values.shape[0]):
        for j in range(values.shape[1]):
            ax.text(j, i, f"{values[i, j]:.3f}", ha="center", va="center",
                    color="black" if values[i, j] > middle else "white")
    ax.figure.colorbar(image, ax=ax, label=f"validation {result.metric}")
    ax.set_title(title or f"validation {result.metric} (mean over runs)")
    ax.figure.tight_layout()
    return ax.figure


def plot_spread(results: dict[str, SearchResult | Sequence[float]], ylabel: str = "score",
                title: str = "", ax=None):
    """Each run as a dot, the mean and ±1 standard deviation as a bar, one column per label."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(1.5 * len(results) + 2.5, 3.4))
    for i, scores in enumerate(results.values()):
        scores = scores.scores() if isinstance(scores, SearchResult) else np.asarray(scores)
        jitter = np.linspace(-0.08, 0.08, len(scores)) if len(scores) > 1 else [0.0]
        ax.plot(i + np.asarray(jitter), scores, "o", alpha=0.7)
        std = scores.std(ddof=1) if len(scores) > 1 else 0.0
        ax.errorbar(i + 0.22, scores.mean(), yerr=std, fmt="s", color="black", capsize=4)
    ax.set_xticks(range(len(results)), list(results), rotation=10)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.figure.tight_layout()
    return ax.figure


def plot_curves(records: dict[str, dict], key: str = "train_loss", source: str = "steps",
                title: str = "", ax=None, logy: bool = False, smooth: int = 1):
    """One line per trial: ``key`` from each record's ``steps`` (per logged step) or
    ``curve`` (per evaluation), e.g. train loss for several learning rates.

    ``smooth > 1`` draws the raw values faintly and their moving average over ``smooth``
    points on top (a loss logged every few small batches is noisy)."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(6.5, 3.4))
    x_name = "step" if source == "steps" else "epoch"
    for label, record in records.items():
        points = record["metrics"][source] if "metrics" in record else record[source]
        x = np.asarray([p[x_name] for p in points if key in p])
        y = np.asarray([p[key] for p in points if key in p], dtype=float)
        if smooth > 1 and len(y) >= smooth:
            line = ax.plot(x, y, "-", alpha=0.25)[0]
            kernel = np.ones(smooth) / smooth
            ax.plot(x[smooth - 1:], np.convolve(y, kernel, mode="valid"), "-",
                    color=line.get_color(), label=label)
        else:
            ax.plot(x, y, "-" if source == "steps" else "o-", label=label)
    ax.set_xlabel("optimizer step" if source == "steps" else "epoch")
    ax.set_ylabel(key.replace("eval_", "validation ").replace("_", " "))
    if logy:
        ax.set_yscale("log")
    ax.legend()
    ax.set_title(title)
    ax.figure.tight_layout()
    return ax.figure

