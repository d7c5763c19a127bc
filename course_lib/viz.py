"""Plots the notebooks use: training curves, schedules, confusion matrices,
attention maps and method comparisons (matplotlib, one function each)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np


def plot_history(history, metrics: tuple[str, ...] = ("eval_accuracy", "eval_macro_f1"),
                 title: str | None = None):
    """Train loss per logged step, eval loss and metrics per evaluation."""
    fig, (ax_loss, ax_metric) = plt.subplots(1, 2, figsize=(10, 3.4))
    steps = history.steps
    if steps:
        ax_loss.plot([s["step"] for s in steps], [s["train_loss"] for s in steps],
                     label="train loss", alpha=0.8)
    evals = history.evals
    if evals and "eval_loss" in evals[0]:
        ax_loss.plot([e["step"] for e in evals], [e["eval_loss"] for e in evals], "o-",
                     label="validation loss")
    ax_loss.set_xlabel("optimizer step")
    ax_loss.set_ylabel("loss")
    ax_loss.legend()
    for name in metrics:
        if evals and name in evals[0]:
            ax_metric.plot([e["step"] for e in evals], [e[name] for e in evals], "o-",
                           label=name.replace("eval_", "validation "))
    ax_metric.set_xlabel("optimizer step")
    ax_metric.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_learning_rates(learning_rates, title: str = "learning-rate schedule"):
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.plot(range(1, len(learning_rates) + 1), learning_rates)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("learning rate")
    ax.set_title(title)
    fig.tight_layout()
    return fig


def plot_confusion_matrix(labels, predictions, label_names, normalize: bool = False,
                          title: str = "confusion matrix"):
    from sklearn.metrics import ConfusionMatrixDisplay

    fig, ax = plt.subplots(figsize=(1.2 * len(label_names) + 2.5, 1.1 * len(label_names) + 2))
    ConfusionMatrixDisplay.from_predictions(
        labels, predictions, labels=list(range(len(label_names))), display_labels=label_names,
        normalize="true" if normalize else None, ax=ax, colorbar=False,
        values_format=".2f" if normalize else "d", xticks_rotation=30)
    ax.set_title(title)
    fig.tight_layout()
    return fig


def plot_attention(weights, tokens, title: str = "attention", ax=None):
    """A heatmap of one head's attention: row = token attending, column = attended to."""
    weights = np.asarray(weights)
    if ax is None:
        size = max(4.0, 0.32 * len(tokens) + 1.5)
        _, ax = plt.subplots(figsize=(size, size))
    ax.imshow(weights, cmap="viridis", vmin=0.0)
    ax.set_xticks(range(len(tokens)), tokens, rotation=90, fontsize=8)
    ax.set_yticks(range(len(tokens)), tokens, fontsize=8)
    ax.set_title(title)
    ax.figure.tight_layout()
    return ax.figure


def plot_token_weights(tokens, weights, title: str = "token weights", ax=None):
    """A bar per token (attention pooling weights, saliency...)."""
    if ax is None:
        _, ax = plt.subplots(figsize=(max(5.0, 0.35 * len(tokens)), 2.8))
    ax.bar(range(len(tokens)), weights)
    ax.set_xticks(range(len(tokens)), tokens, rotation=70, fontsize=8)
    ax.set_title(title)
    ax.figure.tight_layout()
    return ax.figure


def plot_comparison(frame, x: str, ys: tuple[str, ...], title: str = "", kind: str = "bar"):
    """Methods side by side: one group of bars (or one line) per metric."""
    fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(frame) + 2), 3.4))
    positions = np.arange(len(frame))
    width = 0.8 / len(ys)
    for i, y in enumerate(ys):
        if kind == "bar":
            ax.bar(positions + i * width - 0.4 + width / 2, frame[y], width, label=y)
        else:
            ax.plot(positions, frame[y], "o-", label=y)
    ax.set_xticks(positions, [str(v) for v in frame[x]], rotation=20)
    ax.legend()
    ax.set_title(title)
    fig.tight_layout()
    return fig
