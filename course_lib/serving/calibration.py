"""Probabilities that mean what they say, and decisions tuned for macro-F1.

A fine-tuned classifier's softmax is a score, not a frequency: "0.9" may be right
70% of the time (over-confident) or 99% (under-confident). Three tools, all fitted
on a **validation** split and never on the test file (that would grade the model
on answers it was tuned to):

* :func:`expected_calibration_error` (ECE) measures the gap: sort predictions into
  equal-width confidence bins ``(0, 1/M], (1/M, 2/M], ... ((M-1)/M, 1]`` and
  average ``|accuracy - mean confidence|`` over bins, weighted by their share of
  examples. :func:`reliability_data` gives the per-bin numbers a reliability
  diagram draws.
* **Temperature scaling** (Guo et al., 2017): ``softmax(logits / T)`` with the one
  ``T`` that minimises the validation negative log-likelihood. It rescales
  confidence and never changes the arg-max, so accuracy stays as it was. The NLL is
  convex in ``1/T``, so a bounded 1-D search over ``log T`` finds the optimum
  (``T`` is kept in ``[0.05, 20]``: a model that makes no validation mistake would
  otherwise push ``T`` towards 0).
* **Per-class decision offsets** for macro-F1: with imbalanced classes the arg-max
  rarely picks the small class, and a small push towards it trades a little
  accuracy for much recall. **Rule:** ``label = argmax_k(log p_k + bias_k)``,
  where ``p`` are the temperature-scaled probabilities. For two classes that is a
  threshold: predict class 1 when ``p_1 > 1 / (1 + exp(bias_1 - bias_0))``. The
  offsets come from a coordinate search on a grid (each class in turn, a few
  rounds, a change kept only when validation macro-F1 strictly improves; ties go
  to the smaller offset), so a split with nothing to gain keeps all zeros.

:class:`Calibration` holds the result and is stored as ``calibration.json`` beside
the model (``model/`` of ``classify``, and copied into an exported folder), so
``predict`` applies it. :func:`hold_out` makes the validation split when the user
gives none.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..settings import DEFAULT_SEED, CourseError

CALIBRATION_FILE = "calibration.json"
DEFAULT_BINS = 15
TEMPERATURE_RANGE = (0.05, 20.0)
BIAS_GRID = np.round(np.linspace(-3.0, 3.0, 61), 2)  # offsets in log-probability units
DECISION_RULE = "label = argmax_k(log_softmax(logits / temperature)_k + bias_k)"


# ------------------------------------------------------------ probabilities
def log_softmax(logits, temperature: float = 1.0) -> np.ndarray:
    """Row-wise log-softmax of ``logits / temperature`` (float64, numerically stable)."""
    z = np.asarray(logits, dtype=np.float64) / temperature
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def softmax(logits, temperature: float = 1.0) -> np.ndarray:
    return np.exp(log_softmax(logits, temperature))


def nll(logits, labels, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of the true labels."""
    labels = np.asarray(labels, dtype=np.int64)
    return float(-log_softmax(logits, temperature)[np.arange(len(labels)), labels].mean())


# ---------------------------------------------------------------- measuring
def reliability_data(probs, labels, n_bins: int = DEFAULT_BINS) -> dict:
    """Per confidence bin: ``count``, mean ``confidence``, ``accuracy`` (NaN when empty),
    the bin ``edges`` and the ``ece`` they add up to. Bins are right-closed:
    ``((m-1)/M, m/M]``, the first one also takes 0."""
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels)
    if probs.ndim != 2 or len(probs) != len(labels) or not len(labels):
        raise CourseError(f"reliability needs probabilities of shape (n, classes) and n "
                          f"labels; got {probs.shape} and {labels.shape}")
    confidence = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == labels).astype(np.float64)
    bins = np.clip(np.ceil(confidence * n_bins).astype(np.int64) - 1, 0, n_bins - 1)
    count = np.bincount(bins, minlength=n_bins).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(bins, confidence, n_bins) / count
        accuracy = np.bincount(bins, correct, n_bins) / count
    used = count > 0
    ece = float((count[used] / len(labels) * np.abs(accuracy[used] - mean_conf[used])).sum())
    return {"edges": np.linspace(0.0, 1.0, n_bins + 1), "count": count.astype(np.int64),
            "confidence": mean_conf, "accuracy": accuracy, "ece": ece}


def expected_calibration_error(probs, labels, n_bins: int = DEFAULT_BINS) -> float:
    """ECE with ``n_bins`` equal-width confidence bins (0 = perfectly calibrated)."""
    return reliability_data(probs, labels, n_bins)["ece"]


def macro_f1(labels, predictions, n_classes: int) -> float:
    """Macro-F1 over ``n_classes`` classes (absent classes score 0, as scikit-learn's
    ``zero_division=0``); numpy only, because the offset search calls it thousands of times."""
    labels = np.asarray(labels, dtype=np.int64)
    predictions = np.asarray(predictions, dtype=np.int64)
    matrix = np.bincount(labels * n_classes + predictions,
                         minlength=n_classes * n_classes).reshape(n_classes, n_classes)
    tp = np.diag(matrix).astype(np.float64)
    denominator = matrix.sum(0) + matrix.sum(1)  # predicted + true = 2tp + fp + fn
    f1 = np.divide(2 * tp, denominator, out=np.zeros(n_classes), where=denominator > 0)
    return float(f1.mean())


# ------------------------------------------------------------------ fitting
def fit_temperature(logits, labels) -> float:
    """The ``T`` in :data:`TEMPERATURE_RANGE` that minimises the NLL of ``softmax(logits/T)``."""
    from scipy.optimize import minimize_scalar

    logits = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    low, high = (math.log(t) for t in TEMPERATURE_RANGE)
    found = minimize_scalar(lambda log_t: nll(logits, labels, math.exp(log_t)),
                            bounds=(low, high), method="bounded", options={"xatol": 1e-5})
    return float(math.exp(found.x))


def decide(log_probs, bias=None) -> np.ndarray:
    """Class ids by the course's decision rule (see :data:`DECISION_RULE`)."""
    scores = np.asarray(log_probs, dtype=np.float64)
    if bias is not None:
        scores = scores + np.asarray(bias, dtype=np.float64)
    return scores.argmax(axis=-1)


def fit_class_bias(log_probs, labels, n_classes: int | None = None, grid=BIAS_GRID,
                   max_rounds: int = 5) -> np.ndarray:
    """Per-class offsets on log-probabilities that maximise macro-F1 on these examples.

    Coordinate search: each class's offset in turn takes the grid value with the best
    macro-F1 (the others held), for up to ``max_rounds`` rounds. A change is kept only
    when it strictly improves macro-F1, and among equal scores the offset closest to 0
    wins, so the result moves away from plain arg-max only as far as the data ask.
    Offsets are shifted so their mean is 0 (only differences matter).
    """
    log_probs = np.asarray(log_probs, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    n_classes = n_classes or log_probs.shape[1]
    grid = np.asarray(sorted(grid, key=abs), dtype=np.float64)  # ties -> smallest |offset|
    bias = np.zeros(n_classes)
    best = macro_f1(labels, decide(log_probs, bias), n_classes)
    for _ in range(max_rounds):
        improved = False
        for k in range(n_classes):
            trial = bias.copy()
            for value in grid:
                trial[k] = value
                score = macro_f1(labels, decide(log_probs, trial), n_classes)
                if score > best + 1e-12:
                    best, bias, improved = score, trial.copy(), True
        if not improved:
            break
    return bias - bias.mean()


# ---------------------------------------------------------------- the result
@dataclass
class Calibration:
    """Temperature + decision offsets for one model, and how they did on validation.

    ``validation`` holds ``examples``, ``ece_before``/``ece_after``,
    ``nll_before``/``nll_after``, ``accuracy``/``macro_f1`` with plain arg-max and
    ``*_with_bias`` with the offsets.
    """

    labels: list[str]
    temperature: float = 1.0
    bias: list[float] | None = None
    fitted_on: str = ""
    n_bins: int = DEFAULT_BINS
    validation: dict = field(default_factory=dict)

    @property
    def uses_bias(self) -> bool:
        return self.bias is not None and any(abs(b) > 1e-12 for b in self.bias)

    def probabilities(self, logits) -> np.ndarray:
        """Temperature-scaled probabilities (what ``predict`` reports)."""
        return softmax(logits, self.temperature)

    def predict(self, logits) -> np.ndarray:
        """Class ids by :data:`DECISION_RULE`."""
        return decide(log_softmax(logits, self.temperature),
                      self.bias if self.uses_bias else None)

    def evaluate(self, logits, labels) -> dict:
        """ECE and NLL before/after temperature, scores with arg-max and with the offsets."""
        labels = np.asarray(labels, dtype=np.int64)
        n = len(self.labels)
        raw, scaled = softmax(logits), self.probabilities(logits)
        plain, tuned = raw.argmax(axis=1), self.predict(logits)
        return {"examples": int(len(labels)),
                "ece_before": round(expected_calibration_error(raw, labels, self.n_bins), 4),
                "ece_after": round(expected_calibration_error(scaled, labels, self.n_bins), 4),
                "nll_before": round(nll(logits, labels), 4),
                "nll_after": round(nll(logits, labels, self.temperature), 4),
                "accuracy": round(float((plain == labels).mean()), 4),
                "macro_f1": round(macro_f1(labels, plain, n), 4),
                "accuracy_with_bias": round(float((tuned == labels).mean()), 4),
                "macro_f1_with_bias": round(macro_f1(labels, tuned, n), 4)}

    def to_dict(self) -> dict:
        data = asdict(self)
        data["ece_before"] = self.validation.get("ece_before")
        data["ece_after"] = self.validation.get("ece_after")
        data["decision_rule"] = DECISION_RULE
        if self.bias is not None and len(self.labels) == 2:
            data["threshold_for_" + str(self.labels[1])] = round(
                1.0 / (1.0 + math.exp(self.bias[1] - self.bias[0])), 4)
        return data

    def save(self, folder) -> Path:
        """``folder/calibration.json`` (written beside, then renamed: never half a file)."""
        path = Path(folder) / CALIBRATION_FILE
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, folder) -> Calibration | None:
        """The calibration stored in ``folder``, or None when there is none."""
        path = Path(folder) / CALIBRATION_FILE
        if not path.is_file():
            return None
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            calibration = cls(labels=[str(x) for x in data["labels"]],
                              temperature=float(data["temperature"]),
                              bias=None if data.get("bias") is None
                              else [float(b) for b in data["bias"]],
                              fitted_on=str(data.get("fitted_on", "")),
                              n_bins=int(data.get("n_bins", DEFAULT_BINS)),
                              validation=dict(data.get("validation") or {}))
        except (ValueError, KeyError, TypeError) as err:
            raise CourseError(f"{path}: not a valid calibration file ({err}); delete it to "
                              "predict without calibration") from None
        if not calibration.temperature > 0 or (
                calibration.bias is not None and len(calibration.bias) != len(calibration.labels)):
            raise CourseError(f"{path}: temperature must be > 0 and bias must have one value "
                              "per label")
        return calibration


def fit_calibration(logits, labels, label_names: list[str], *, fitted_on: str,
                    thresholds: bool = True, n_bins: int = DEFAULT_BINS) -> Calibration:
    """Fit temperature (and, with ``thresholds``, decision offsets) on validation logits."""
    logits = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    if len(logits) != len(labels) or len(labels) < 2:
        raise CourseError(f"calibration needs validation logits and labels of one length "
                          f"(at least 2); got {len(logits)} and {len(labels)}")
    temperature = fit_temperature(logits, labels)
    bias = None
    if thresholds:
        bias = fit_class_bias(log_softmax(logits, temperature), labels, len(label_names))
        bias = [round(float(b), 4) for b in bias]
    calibration = Calibration(labels=[str(x) for x in label_names],
                              temperature=round(temperature, 4), bias=bias,
                              fitted_on=fitted_on, n_bins=n_bins)
    calibration.validation = calibration.evaluate(logits, labels)
    return calibration


# ------------------------------------------------------- with a trained model
def hold_out(examples: list[dict], *, fraction: float = 0.1, seed: int = DEFAULT_SEED,
             label_key: str = "label") -> tuple[list[dict], list[dict]]:
    """``(train, validation)``: a stratified ``fraction`` of ``examples`` held out with ``seed``.

    Returns ``(examples, [])`` when the data are too small to hold out one example of
    every class and still train on every class (a class with fewer than 2 examples,
    or a validation share smaller than the number of classes): then there is nothing
    to calibrate on, and the caller says so.
    """
    from collections import Counter

    from sklearn.model_selection import train_test_split

    counts = Counter(ex[label_key] for ex in examples)
    if min(counts.values(), default=0) < 2 or math.ceil(len(examples) * fraction) < len(counts):
        return examples, []
    train, validation = train_test_split(examples, test_size=fraction, random_state=seed,
                                         stratify=[ex[label_key] for ex in examples])
    return train, validation


def calibrate(model, validation, label_names: list[str], *, fitted_on: str,
              batch_size: int = 64, pad_token_id: int = 0, thresholds: bool = True
              ) -> Calibration:
    """Fit a :class:`Calibration` for ``model`` on tokenised ``validation`` examples
    (dicts with the model's inputs and ``labels``), e.g. in ``classify`` before the
    model is saved: ``calibration.save(tmp)`` inside the save's ``extra`` hook puts
    it in ``model/``."""
    import torch

    from ..training import batched_outputs

    labels = np.array([int(ex["labels"]) for ex in validation])
    outputs = batched_outputs(model, validation, batch_size=batch_size,
                              pad_token_id=pad_token_id)
    logits = torch.stack(outputs["logits"]).numpy()
    return fit_calibration(logits, labels, label_names, fitted_on=fitted_on,
                           thresholds=thresholds)
