"""The reliability diagram: how often the model is right at each level of confidence.

Bars on the diagonal mean "0.8" is right 80% of the time. Bars below it are
over-confidence (the usual case for a fine-tuned BERT), above it under-confidence.
Call it twice on one ``ax`` to compare raw and temperature-scaled probabilities.
"""

from __future__ import annotations

import matplotlib.pyplot as plt

from .calibration import DEFAULT_BINS, reliability_data


def plot_reliability(probs, labels, *, n_bins: int = DEFAULT_BINS, name: str = "model",
                     ax=None, color=None):
    """Accuracy per confidence bin (bars, empty bins left out) against the diagonal,
    with the ECE in the legend and each bin's share of examples as a faint line.
    Returns the axes."""
    data = reliability_data(probs, labels, n_bins)
    if ax is None:
        _, ax = plt.subplots(figsize=(4.5, 4.5))
    edges = data["edges"]
    centres = (edges[:-1] + edges[1:]) / 2
    used = data["count"] > 0
    width = (edges[1] - edges[0]) * 0.9
    ax.bar(centres[used], data["accuracy"][used], width=width, alpha=0.55, color=color,
           edgecolor="black", linewidth=0.5, label=f"{name} (ECE {data['ece']:.3f})")
    share = data["count"] / max(data["count"].sum(), 1)
    ax.plot(centres[used], share[used], ":", color=color or "grey", linewidth=1)
    if not any(line.get_label() == "perfect calibration" for line in ax.get_lines()):
        ax.plot([0, 1], [0, 1], "--", color="black", linewidth=1, label="perfect calibration")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence (probability of the predicted label)")
    ax.set_ylabel("accuracy in the bin (dotted: share of examples)")
    ax.set_title("reliability diagram")
    ax.legend(loc="upper left", fontsize="small")
    return ax

