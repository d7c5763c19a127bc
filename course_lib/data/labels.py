"""Label names and counts, and the two answers to class imbalance: weights and oversampling.

Medical Abstracts and PubMedQA are imbalanced; a model can score well by
ignoring the rare classes. Notebook 02 compares the two remedies built here:
weighting the loss by inverse class frequency (scikit-learn's "balanced"
weights) and repeating the rarer training examples.
"""

from __future__ import annotations

import operator
from collections import Counter

import numpy as np

from ..settings import CourseError
from .records import SPLIT_SEED


def label_names(dataset, column: str = "label") -> list[str]:
    """Names of a ClassLabel column (``dataset`` may be a DatasetDict)."""
    split = dataset["train"] if hasattr(dataset, "keys") and "train" in dataset else dataset
    return list(split.features[column].names)


def label_counts(dataset, column: str = "label") -> dict[str, int]:
    """``{label name: count}`` for a Dataset, or summed over a DatasetDict's splits."""
    names = label_names(dataset, column)
    splits = list(dataset.values()) if hasattr(dataset, "keys") else [dataset]
    counts = Counter(v for split in splits for v in split[column])
    return {names[i]: counts.get(i, 0) for i in range(len(names))}


def class_weights(labels, num_classes: int | None = None) -> np.ndarray:
    """Inverse-frequency weights, ``n / (k * count)``: scikit-learn's "balanced" weights.

    A class twice as rare weighs twice as much in the loss, so every class
    contributes the same total weight. ``k`` counts the classes present in
    ``labels``. A class of ``range(num_classes)`` absent from ``labels`` gets
    weight 0: it has no examples to balance (its "balanced" weight would be
    infinite), and it never appears as a target in the data the weights were
    computed from. Compute the weights on the training split, and stratify the
    splits so that every class is in it.
    """
    from sklearn.utils.class_weight import compute_class_weight

    values = list(labels)
    if not values:
        raise CourseError("class_weights: no labels given")
    try:
        labels = np.asarray([operator.index(v) for v in values], dtype=int)
    except TypeError:
        raise CourseError(f"class_weights: labels must be class ids (integers), got "
                          f"{type(values[0]).__name__} values such as {values[0]!r}") from None
    k = num_classes if num_classes is not None else int(labels.max()) + 1
    if labels.min() < 0 or labels.max() >= k:
        raise CourseError(f"class_weights: labels must be in 0..{k - 1}, found "
                          f"{int(labels.min())}..{int(labels.max())}")
    present = np.unique(labels)
    weights = np.zeros(k)
    weights[present] = compute_class_weight("balanced", classes=present, y=labels)
    return weights


def weighted_loss(weights, label_key: str = "labels"):
    """A ``compute_loss(model, batch) -> (loss, outputs)`` for the Trainer with class weights.

    The model runs without labels (so it does not compute its own loss); the
    loss is the batch's mean of ``weight[label] * cross-entropy``, scikit-learn's
    sample-weight semantics. It is *not* PyTorch's ``cross_entropy(weight=...)``,
    which divides by the batch's sum of weights: that divisor depends on which
    examples share a batch, so gradient accumulation or a second process (whose
    gradients are averaged with equal shares) would optimise a different objective
    than one process with the same global batch (measured: 14% apart on notebook
    13's run). A plain per-example mean has no such divisor. With
    :func:`class_weights` ("balanced") the training examples' mean weight is exactly
    1, so the loss keeps the unweighted loss's scale and the learning rate its meaning.
    """
    import torch

    weight = torch.as_tensor(np.asarray(weights), dtype=torch.float32)

    def compute_loss(model, batch):
        inputs = {k: v for k, v in batch.items() if k != label_key}
        outputs = model(**inputs)
        logits = outputs["logits"] if isinstance(outputs, dict) else outputs.logits
        labels = batch[label_key]
        per_example = torch.nn.functional.cross_entropy(logits.float(), labels,
                                                        reduction="none")
        return (weight.to(logits.device)[labels] * per_example).mean(), outputs

    return compute_loss


def oversample(dataset, column: str = "label", seed: int = SPLIT_SEED):
    """Repeat examples of the rarer classes until every class is as large as the largest.

    Only for the training split: oversampling validation or test data would
    change what the scores mean.
    """
    labels = np.asarray(list(dataset[column]), dtype=int)
    rng = np.random.default_rng(seed)
    target = np.bincount(labels).max()
    indices = []
    for value in np.unique(labels):
        members = np.flatnonzero(labels == value)
        extra = rng.choice(members, size=target - len(members), replace=True)
        indices.extend(members.tolist() + extra.tolist())
    return dataset.select(rng.permutation(indices).tolist())
