"""metrics.paired_bootstrap: the interval notebooks use to say "within noise"."""

import numpy as np
import pytest
from sklearn.metrics import f1_score

from course_lib import metrics

NAMES = ["negative", "neutral", "positive"]


def noisy(labels, keep, rng):
    return np.where(rng.random(len(labels)) < keep, labels, rng.integers(0, 3, len(labels)))


def test_each_resample_scores_like_scikit_learn():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 60)
    a, b = noisy(labels, 0.8, rng), noisy(labels, 0.6, rng)
    result = metrics.paired_bootstrap(labels, a, b, label_names=NAMES, resamples=200, seed=5)
    draws = np.random.default_rng(5).integers(0, 60, (200, 60))
    by_sklearn = [f1_score(labels[i], a[i], labels=[0, 1, 2], average="macro", zero_division=0)
                  - f1_score(labels[i], b[i], labels=[0, 1, 2], average="macro", zero_division=0)
                  for i in draws]
    low, high = np.quantile(by_sklearn, [0.025, 0.975])
    assert result["low"] == pytest.approx(low) and result["high"] == pytest.approx(high)
    assert result["difference"] == pytest.approx(
        f1_score(labels, a, average="macro") - f1_score(labels, b, average="macro"))


def test_a_clearly_better_model_is_outside_the_noise_and_a_copy_is_inside():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 3, 400)
    good, poor = noisy(labels, 0.95, rng), noisy(labels, 0.5, rng)
    clear = metrics.paired_bootstrap(labels, good, poor, label_names=NAMES)
    assert clear["low"] > 0 and not clear["within_noise"]
    same = metrics.paired_bootstrap(labels, good, good.copy(), metric="accuracy")
    assert same["difference"] == same["low"] == same["high"] == 0 and same["within_noise"]


def test_logits_are_argmaxed_and_lengths_must_match():
    labels = np.array([0, 1, 2, 1])
    logits = np.eye(3)[labels] * 5.0
    assert metrics.paired_bootstrap(labels, logits, labels, resamples=10)["difference"] == 0
    with pytest.raises(ValueError, match="4 labels"):
        metrics.paired_bootstrap(labels, labels[:3], labels)
