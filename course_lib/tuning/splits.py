"""Data access for a search (labels, subsets, stratified folds) and the sealed test split.

Every search function takes a train split and a validation split only, and refuses a
``DatasetDict`` that still holds ``test``; the sealed split opens exactly once, at the
end, through ``test.evaluate(...)``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from ..settings import CourseError


def _is_dataset_dict(obj) -> bool:
    """A ``DatasetDict`` or a plain dict of splits (a single split is never a mapping)."""
    return isinstance(obj, Mapping)


def refuse_test(*splits) -> None:
    """The search never sees the test split: refuse anything that could carry it."""
    for split in splits:
        if isinstance(split, HeldOutTest):
            raise CourseError("the held-out test split cannot take part in a search; select on "
                              "validation, then call test.evaluate(...) once at the end")
        if split is not None and _is_dataset_dict(split):
            names = ", ".join(split.keys())
            hint = " (it holds a 'test' split: use hold_out_test() first)" \
                if "test" in split else ""
            raise CourseError(f"pass single splits (train, validation) to the search, not a dict "
                              f"of splits [{names}]{hint}")


def labels_of(dataset, column: str = "labels") -> np.ndarray:
    """The label of every example of a ``datasets.Dataset`` or a list of dicts."""
    if hasattr(dataset, "column_names"):
        if column not in dataset.column_names:
            raise CourseError(f"the dataset has no {column!r} column (columns: "
                              f"{', '.join(dataset.column_names)})")
        return np.asarray(dataset[column])
    try:
        return np.asarray([int(row[column]) for row in dataset])
    except KeyError:
        raise CourseError(f"an example has no {column!r} field") from None


def subset(dataset, indices) -> object:
    """Rows ``indices`` of a ``datasets.Dataset`` or a list of dicts."""
    indices = [int(i) for i in indices]
    if hasattr(dataset, "select"):
        return dataset.select(indices)
    return [dataset[i] for i in indices]


def stratified_subset(dataset, n: int, seed: int = 0, column: str = "labels"):
    """``n`` examples with the label proportions of the whole (for quick runs)."""
    from sklearn.model_selection import train_test_split

    total = len(dataset)
    if n >= total:
        return dataset
    keep, _ = train_test_split(np.arange(total), train_size=n, random_state=seed,
                               stratify=labels_of(dataset, column))
    return subset(dataset, sorted(keep))


def kfold_indices(labels, k: int, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """``k`` (train, validation) index pairs from scikit-learn's ``StratifiedKFold``: the
    validation parts are disjoint, cover every example once, and keep the label mix."""
    from sklearn.model_selection import StratifiedKFold

    labels = np.asarray(labels)
    if k < 2:
        raise CourseError(f"folds must be at least 2, got {k}")
    present = np.bincount(labels)
    smallest = int(present[present > 0].min()) if labels.size else 0
    if smallest < k:
        raise CourseError(f"folds={k} but the rarest class has only {smallest} examples; "
                          "use fewer folds or more data")
    splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    return list(splitter.split(np.zeros(len(labels)), labels))


# ---------------------------------------------------------- the sealed test
class HeldOutTest:
    """The test split, sealed: it can be used once, through :meth:`evaluate`.

    Model selection looks at validation scores only. Looking at test scores while choosing
    (even "just to check") turns the test split into a second validation split and its
    score into an optimistic estimate.
    """

    def __init__(self, split):
        self._split = split
        self.result = None
        self.opened = False

    def __len__(self) -> int:
        return len(self._split)

    def __repr__(self) -> str:
        state = "used once, now closed" if self.opened else "sealed"
        return f"HeldOutTest({len(self)} examples, {state})"

    def evaluate(self, evaluate_fn: Callable[[object], dict]) -> dict:
        """Run ``evaluate_fn(test_split)`` once and return (and keep) its result."""
        if self.opened:
            raise CourseError("the test split was already used once; a second look would make "
                              "it part of model selection (its first result is in test.result)")
        self.opened = True
        self.result = evaluate_fn(self._split)
        return self.result


def hold_out_test(dataset_dict) -> tuple[dict, HeldOutTest]:
    """``({"train": ..., "validation": ...}, HeldOutTest(test))`` from a DatasetDict."""
    if not _is_dataset_dict(dataset_dict) or "test" not in dataset_dict:
        raise CourseError("hold_out_test needs a DatasetDict with train, validation and test "
                          "splits")
    development = {name: split for name, split in dataset_dict.items() if name != "test"}
    return development, HeldOutTest(dataset_dict["test"])

