"""Scores from scikit-learn, in the shapes the Trainer and the notebooks use.

Accuracy alone hides a model that ignores a small class; the course reports
macro-F1 (every class counts equally) next to it, plus the per-class report.
"""

from __future__ import annotations

import re
import string
from collections import Counter

import numpy as np
from sklearn.metrics import accuracy_score, classification_report, confusion_matrix, f1_score


def classification_scores(labels, predictions, label_names: list[str] | None = None,
                          report: bool = False) -> dict:
    """``accuracy`` and ``macro_f1`` (and the per-class ``report`` when asked)."""
    labels = np.asarray(labels)
    predictions = np.asarray(predictions)
    ids = list(range(len(label_names))) if label_names else sorted(set(labels) | set(predictions))
    out = {"accuracy": float(accuracy_score(labels, predictions)),
           "macro_f1": float(f1_score(labels, predictions, labels=ids, average="macro",
                                      zero_division=0))}
    if report:
        out["report"] = classification_report(labels, predictions, labels=ids,
                                              target_names=label_names, output_dict=True,
                                              zero_division=0)
    return out


def classification_metrics(label_names: list[str] | None = None):
    """A ``compute_metrics`` function for the Trainer (accuracy and macro-F1)."""

    def compute(preds) -> dict:
        return classification_scores(preds.label_ids, preds.predictions, label_names)

    return compute


def paired_bootstrap(labels, predictions_a, predictions_b, metric: str = "macro_f1",
                     label_names: list[str] | None = None, resamples: int = 2000,
                     level: float = 0.95, seed: int = 0) -> dict:
    """How far ``metric(a) - metric(b)`` could move with another test set of the same size.

    Both models are scored on the same resampled sentences (drawn with replacement), so
    the interval holds the test set's sampling noise, not the seed's: two methods whose
    interval contains 0 are within noise on this test set. Returns ``difference`` (on the
    real test set), ``low`` and ``high`` (the central ``level`` of the resampled
    differences) and ``within_noise``. Predictions may be label ids or logits.
    """
    labels = np.asarray(labels)
    a, b = (np.asarray(p) for p in (predictions_a, predictions_b))
    a, b = (p.argmax(-1) if p.ndim == 2 else p for p in (a, b))
    if not len(labels) == len(a) == len(b):
        raise ValueError(f"{len(labels)} labels but {len(a)} and {len(b)} predictions")

    ids = np.arange(len(label_names)) if label_names else np.union1d(labels, np.union1d(a, b))

    def scores(truth, predicted):  # one row per resample; sklearn's formulas, vectorised
        if metric == "accuracy":
            return (truth == predicted).mean(-1)
        if metric != "macro_f1":
            raise ValueError(f"metric must be 'accuracy' or 'macro_f1', not {metric!r}")
        is_true, is_pred = truth[..., None] == ids, predicted[..., None] == ids
        hits = (is_true & is_pred).sum(-2)
        both = is_true.sum(-2) + is_pred.sum(-2)
        return np.where(both > 0, 2 * hits / np.maximum(both, 1), 0.0).mean(-1)

    draws = np.random.default_rng(seed).integers(0, len(labels), (resamples, len(labels)))
    differences = scores(labels[draws], a[draws]) - scores(labels[draws], b[draws])
    low, high = np.quantile(differences, [(1 - level) / 2, (1 + level) / 2])
    return {"difference": float(scores(labels, a) - scores(labels, b)), "low": float(low),
            "high": float(high), "within_noise": bool(low <= 0 <= high)}


def confusion(labels, predictions, n_labels: int) -> np.ndarray:
    return confusion_matrix(labels, predictions, labels=list(range(n_labels)))


def majority_baseline(train_labels, test_labels) -> dict:
    """Scores of always predicting the most frequent training label: the bar to beat."""
    majority = Counter(list(train_labels)).most_common(1)[0][0]
    preds = np.full(len(test_labels), majority)
    return classification_scores(test_labels, preds)


# ----------------------------------------------------------- SQuAD scores
def normalize_answer(text: str) -> str:
    """SQuAD normalisation: lower case, no punctuation, no articles, single spaces."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def exact_match(prediction: str, truth: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(truth))


def token_f1(prediction: str, truth: str) -> float:
    pred_tokens = normalize_answer(prediction).split()
    true_tokens = normalize_answer(truth).split()
    if not pred_tokens or not true_tokens:  # unanswerable: both empty is a match
        return float(pred_tokens == true_tokens)
    common = Counter(pred_tokens) & Counter(true_tokens)
    overlap = sum(common.values())
    if overlap == 0:
        return 0.0
    precision = overlap / len(pred_tokens)
    recall = overlap / len(true_tokens)
    return 2 * precision * recall / (precision + recall)


def squad_scores(predictions: dict[str, str], answers: dict[str, list[str]]) -> dict:
    """Exact match and F1 in percent, each question scored against its best gold answer.

    A question with no gold answers (SQuAD 2.0) expects the empty string.
    """
    em = f1 = 0.0
    for qid, golds in answers.items():
        golds = golds or [""]
        pred = predictions.get(qid, "")
        em += max(exact_match(pred, g) for g in golds)
        f1 += max(token_f1(pred, g) for g in golds)
    n = max(len(answers), 1)
    return {"exact_match": 100.0 * em / n, "f1": 100.0 * f1 / n}
