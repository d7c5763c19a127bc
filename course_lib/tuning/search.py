"""Running a search: every (configuration, seed[, fold]) once, results in one table.

Each *trial* is one configuration, one seed and, with ``folds=k``, one fold of a
stratified k-fold split, and calls ``train_fn(params, train, validation, seed) -> dict
of validation metrics``. :func:`compare` says whether a difference between two
configurations is larger than their seed (or fold) noise.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from .. import settings
from ..settings import CourseError
from .configs import grid, is_missing, plain_value, sample, short_text, trial_key
from .splits import kfold_indices, labels_of, refuse_test, subset
from .storage import TrialStore

TrainFn = Callable[[dict, object, object, int], dict]


@dataclass
class SearchResult:
    """Every trial of a search; ``frame`` has one row per (configuration, seed, fold)."""

    records: list[dict]
    params: list[str]
    metric: str = "macro_f1"
    greater_is_better: bool = True
    ran: int = 0
    reused: int = 0

    @property
    def frame(self):
        """One row per trial: the hyperparameters, seed, fold, scalar metrics, seconds."""
        import pandas as pd

        rows = []
        for r in self.records:
            scalars = {k: v for k, v in r["metrics"].items()
                       if isinstance(v, (int, float, bool, str)) or v is None}
            rows.append({**r["params"], "seed": r["seed"], "fold": r["fold"], **scalars,
                         "seconds": r["seconds"], "key": r["key"]})
        return pd.DataFrame(rows)

    def scores(self, params: dict | None = None) -> np.ndarray:
        """The metric of every run of one configuration (all runs when ``params`` is None)."""
        chosen = [r for r in self.records if params is None or r["params"] == params]
        return np.asarray([r["metrics"][self.metric] for r in chosen], dtype=float)

    def summary(self):
        """Mean, standard deviation and number of runs per configuration, best first."""
        frame = self.frame
        group = frame.groupby(self.params, sort=False, dropna=False)[self.metric]
        table = group.agg(["mean", "std", "count"]).reset_index()
        table = table.rename(columns={"mean": f"{self.metric}_mean",
                                      "std": f"{self.metric}_std", "count": "runs"})
        table["seconds"] = frame.groupby(self.params, sort=False, dropna=False)["seconds"] \
            .sum().to_numpy()
        return table.sort_values(f"{self.metric}_mean", ascending=not self.greater_is_better,
                                 kind="stable").reset_index(drop=True)

    def top(self, n: int) -> list[dict]:
        """The ``n`` best configurations (by mean validation metric), best first."""
        table = self.summary().head(n)[self.params]  # to_dict keeps each column's type
        return [{k: plain_value(v) for k, v in row.items() if not is_missing(v)}
                for row in table.to_dict("records")]

    def best_params(self) -> dict:
        """The configuration with the best mean validation metric (ties: the first tried)."""
        return self.top(1)[0]

    def record(self, params: dict, seed: int | None = None) -> dict:
        """The stored record (metrics, curves) of one trial."""
        for r in self.records:
            if r["params"] == params and (seed is None or r["seed"] == seed):
                return r
        raise CourseError(f"no trial with {params} (seed {seed}) in this result")


def run_trials(configs: Iterable[dict], train_fn: TrainFn, train, validation=None, *,
               seeds: Sequence[int] | None = None, folds: int | None = None,
               fold_seed: int = 0, store: str | os.PathLike | None = None,
               metric: str = "macro_f1", greater_is_better: bool = True,
               label_column: str = "labels", verbose: bool = True) -> SearchResult:
    """Run every (configuration, seed[, fold]) once and collect validation metrics.

    Without ``folds`` each trial trains on ``train`` and scores on ``validation``. With
    ``folds=k`` the validation split comes from ``train`` itself, fold by fold (give no
    ``validation``). There is deliberately no argument for a test split. ``seeds``
    defaults to one seed, ``COURSE_SEED`` (42 unless set).
    """
    seeds = (settings.course_seed(),) if seeds is None else seeds
    configs = [dict(c) for c in configs]
    if not configs:
        raise CourseError("no configurations to try")
    refuse_test(train, validation)
    if folds is None and validation is None:
        raise CourseError("pass a validation split, or folds=k to cross-validate on train")
    if folds is not None and validation is not None:
        raise CourseError("with folds=k the validation folds come from train; do not pass "
                          "a separate validation split")
    splits = kfold_indices(labels_of(train, label_column), folds, fold_seed) if folds else None
    sizes = (len(train), 0 if validation is None else len(validation), fold_seed if folds else 0)
    describe = getattr(train_fn, "describe", None)  # the full configuration, defaults included
    saved = TrialStore(store) if store else None
    done = saved.load() if saved else {}
    names = list(dict.fromkeys(k for c in configs for k in c))
    plan = [(c, s, f) for c in configs for s in seeds
            for f in (range(folds) if folds else [None])]
    records, ran, reused = [], 0, 0
    for number, (params, seed, fold) in enumerate(plan, 1):
        key = trial_key(describe(params) if describe else params, seed, fold, sizes)
        if key in done:  # finished earlier (maybe under another name for the same settings)
            records.append({**done[key], "params": params})
            reused += 1
            continue
        if fold is None:
            fit_on, score_on = train, validation
        else:
            fit_on, score_on = subset(train, splits[fold][0]), subset(train, splits[fold][1])
        started = time.perf_counter()
        metrics = dict(train_fn(dict(params), fit_on, score_on, seed))
        if metric not in metrics:
            raise CourseError(f"the train function returned no {metric!r} (it returned "
                              f"{', '.join(sorted(metrics))})")
        record = {"key": key, "params": params, "seed": seed, "fold": fold,
                  "metrics": metrics, "seconds": round(time.perf_counter() - started, 2)}
        if saved:
            saved.append(record)
        records.append(record)
        ran += 1
        if verbose:
            where = f" fold {fold + 1}/{folds}" if fold is not None else ""
            shown = ", ".join(f"{k}={short_text(v)}" for k, v in params.items())
            print(f"trial {number}/{len(plan)}  {shown}  seed {seed}{where}:  "
                  f"{metric} {metrics[metric]:.3f}  ({record['seconds']:.1f} s)")
    if verbose:
        where = f" (stored in {saved.path})" if saved else ""
        print(f"{len(plan)} trials: {ran} run, {reused} read back from earlier runs{where}")
    return SearchResult(records, names, metric, greater_is_better, ran, reused)



def grid_search(space: dict, train_fn: TrainFn, train, validation=None, **options
                ) -> SearchResult:
    """Every combination in ``space`` (see :func:`run_trials` for the options)."""
    return run_trials(grid(space), train_fn, train, validation, **options)


def random_search(space: dict, n_trials: int, train_fn: TrainFn, train, validation=None, *,
                  sampler_seed: int = 0, **options) -> SearchResult:
    """``n_trials`` configurations drawn from ``space`` (lists or scipy distributions)."""
    return run_trials(sample(space, n_trials, sampler_seed), train_fn, train, validation,
                      **options)


def cross_validate(params: dict, train_fn: TrainFn, data, *, folds: int = 3,
                   **options) -> SearchResult:
    """One configuration on ``folds`` stratified folds of ``data``: a score per fold."""
    return run_trials([params], train_fn, data, folds=folds, **options)


def repeat_seeds(params: dict, train_fn: TrainFn, train, validation, *,
                 seeds: Sequence[int] = (0, 1, 2), **options) -> SearchResult:
    """One configuration, several seeds: how much of a score is luck."""
    return run_trials([params], train_fn, train, validation, seeds=seeds, **options)


def compare(scores_a, scores_b, level: float = 0.05) -> dict:
    """Is the difference between two configurations larger than their seed (or fold) noise?

    Returns both means and standard deviations, the difference, its standard error
    ``sqrt(s_a**2 / n_a + s_b**2 / n_b)``, Welch's t-test p-value, and ``min_difference``:
    the smallest difference that would be significant at ``level`` with these spreads and
    run counts (about 2 standard errors with many runs, 2.8 or more with 3 runs each).
    """
    from scipy import stats

    a, b = np.asarray(scores_a, dtype=float), np.asarray(scores_b, dtype=float)
    if len(a) < 2 or len(b) < 2:
        raise CourseError("compare needs at least two runs (seeds or folds) per configuration")
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    se = math.sqrt(va + vb)
    if se > 0:  # Welch-Satterthwaite degrees of freedom
        df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
        p_value = float(stats.ttest_ind(a, b, equal_var=False).pvalue)
    else:
        df, p_value = float(len(a) + len(b) - 2), float("nan")
    min_difference = float(stats.t.ppf(1 - level / 2, df) * se)
    difference = float(a.mean() - b.mean())
    return {"mean_a": float(a.mean()), "mean_b": float(b.mean()), "difference": difference,
            "std_a": float(a.std(ddof=1)), "std_b": float(b.std(ddof=1)),
            "standard_error": se, "df": float(df), "p_value": p_value,
            "min_difference": min_difference,
            "significant": bool(se > 0 and abs(difference) > min_difference)}

