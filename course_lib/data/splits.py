"""train / validation / test splits that cannot leak, and the checks that prove it.

A score means something only if no test text was seen in training. Texts that
differ only in case or punctuation count as one (:func:`~course_lib.data.records.text_key`),
classification splits are stratified so every split has the same class shares,
and QA splits keep every document *and* every passage on one side: questions
about one article in two splits would let the model memorise the article.
Too-small data fail here in one line instead of in a scikit-learn traceback.
"""

from __future__ import annotations

import math
from collections import Counter

from ..settings import CourseError
from .records import SPLIT_SEED, text_key


def _check_splittable(records: list[dict], stratify_key: str | None, groups, source: str,
                      test_size: float, val_share: float) -> None:
    """Fail with one line (not a scikit-learn traceback) when the data are too small."""
    if groups is not None:
        if len(set(groups)) < 3:
            raise CourseError(f"{source}: {len(set(groups))} passages are too few for "
                              "train / validation / test (need at least 3)")
        return
    classes = len({r[stratify_key] for r in records}) if stratify_key else 1
    n_test = math.ceil(len(records) * test_size)
    n_val = math.ceil((len(records) - n_test) * val_share)
    if n_val < classes or (test_size and n_test < classes) or len(records) < 10:
        raise CourseError(f"{source}: {len(records)} examples are too few to split into "
                          f"train / validation / test with {classes} classes in each")
    if stratify_key:
        counts = Counter(r[stratify_key] for r in records)
        rare = [f"{k} ({n})" for k, n in counts.items() if n < 3]
        if rare:
            raise CourseError(f"{source}: too few examples to stratify: {', '.join(map(str, rare))}"
                              "; every label needs at least 3")


def _passage_groups(records: list[dict], key: str) -> list[str]:
    """One group per document: questions on the same ``key`` value *or* the same
    passage text (two titles can share a passage) land in one group."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for r in records:
        a, b = find("k:" + str(r[key])), find("p:" + text_key(r["context"]))
        if a != b:
            parent[b] = a
    return [find("k:" + str(r[key])) for r in records]


def split_records(records: list[dict], *, stratify_key: str | None = "label",
                  group_key: str | None = None, test_size: float = 0.2,
                  validation_size: float = 0.1, seed: int = SPLIT_SEED,
                  fixed_test_ids: set[str] | None = None,
                  source: str = "dataset") -> dict[str, list[dict]]:
    """train / validation / test with a fixed seed.

    Classification: stratified by label, so every split has the same class
    shares. QA: by ``group_key`` (the document) and by passage text, so that
    questions about one passage never straddle two splits. ``fixed_test_ids``
    (PubMedQA's official test set) fixes the test split; the rest is split into
    train and validation.
    """
    from sklearn.model_selection import GroupShuffleSplit, train_test_split

    if not 0 < test_size < 1 or not 0 < validation_size < 1 - test_size:
        raise CourseError(f"test_size={test_size} and validation_size={validation_size} must "
                          "be shares between 0 and 1 that leave room for training")
    val_share = validation_size / (1 - test_size)
    labels_of = (lambda rows: [r[stratify_key] for r in rows]) if stratify_key else \
        (lambda rows: None)
    if fixed_test_ids:
        test = [r for r in records if r["id"] in fixed_test_ids]
        rest = [r for r in records if r["id"] not in fixed_test_ids]
        _check_splittable(rest, stratify_key, None, source, 0.0, val_share)
        train, val = train_test_split(rest, test_size=val_share, random_state=seed,
                                      stratify=labels_of(rest))
        return {"train": train, "validation": val, "test": test}
    if group_key:
        groups = _passage_groups(records, group_key)
        _check_splittable(records, None, groups, source, test_size, val_share)
        outer = GroupShuffleSplit(n_splits=1, test_size=test_size, random_state=seed)
        rest_idx, test_idx = next(outer.split(records, groups=groups))
        inner = GroupShuffleSplit(n_splits=1, test_size=val_share, random_state=seed)
        train_idx, val_idx = next(inner.split(rest_idx, groups=[groups[i] for i in rest_idx]))
        return {"train": [records[rest_idx[i]] for i in train_idx],
                "validation": [records[rest_idx[i]] for i in val_idx],
                "test": [records[i] for i in test_idx]}
    _check_splittable(records, stratify_key, None, source, test_size, val_share)
    rest, test = train_test_split(records, test_size=test_size, random_state=seed,
                                  stratify=labels_of(records))
    train, val = train_test_split(rest, test_size=val_share, random_state=seed,
                                  stratify=labels_of(rest))
    return {"train": train, "validation": val, "test": test}


def find_leaks(splits, columns: list[str] | None = None) -> dict[str, int]:
    """How many texts of each column appear in two splits (0 everywhere = no leakage).

    ``splits`` is a DatasetDict or a ``{name: list of dicts}``; texts are compared
    with :func:`text_key`. Returns ``{"text: train/test": 0, ...}``.
    """
    names = list(splits.keys())
    if columns is None:
        first = splits[names[0]]
        present = first.column_names if hasattr(first, "column_names") else list(first[0])
        columns = [c for c in ("text", "context", "question") if c in present][:1]
        if "question" in present and "label" in present:  # PubMedQA: one abstract per question
            columns = ["question", "context"]
    leaks = {}
    for column in columns:
        keys = {}
        for name in names:
            split = splits[name]
            values = split[column] if hasattr(split, "column_names") else \
                [r[column] for r in split]
            keys[name] = {text_key(v) for v in values}
        for i, a in enumerate(names):
            for b in names[i + 1 :]:
                leaks[f"{column}: {a}/{b}"] = len(keys[a] & keys[b])
    return leaks


def check_no_leakage(splits, columns: list[str] | None = None) -> dict[str, int]:
    """:func:`find_leaks`, raising when any text appears in two splits."""
    leaks = find_leaks(splits, columns)
    bad = {k: v for k, v in leaks.items() if v}
    if bad:
        raise CourseError("texts appear in two splits: " +
                          ", ".join(f"{k} ({v})" for k, v in bad.items()))
    return leaks
