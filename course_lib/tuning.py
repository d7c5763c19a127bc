"""Hyperparameter search and model selection, arranged so that the test split cannot leak.

The workflow the course teaches (notebook 08):

1. ``development, test = hold_out_test(dataset_dict)`` seals the test split away. Every
   search function here takes a train split and a validation split only, and refuses a
   ``DatasetDict`` that still holds ``test``; the sealed split opens exactly once, at the
   end, through ``test.evaluate(...)``.
2. ``grid_search`` / ``random_search`` try configurations (learning rate, batch size,
   epochs, warmup, weight decay, strategy...). Each *trial* is one configuration, one
   seed and, with ``folds=k``, one fold of a stratified k-fold split (scikit-learn's
   ``StratifiedKFold``), and calls a train function ``train_fn(params, train, validation,
   seed) -> dict of validation metrics``. :class:`TrainerObjective` is that function for
   :class:`~course_lib.training.Trainer`.
3. Results come back as a :class:`SearchResult`: ``.frame`` is a pandas DataFrame with one
   row per trial; ``.summary()`` gives the mean and standard deviation over seeds and
   folds; ``.best_params()`` picks on the validation metric.
4. With ``store="runs/search.jsonl"`` every finished trial is appended to a JSON Lines
   file, keyed by a hash of (configuration, seed, fold, data sizes). Run the same call
   again after an interruption and finished trials are read back instead of re-run.

For lessons that need many runs on a CPU, :func:`cache_lower_layers` and
:class:`UpperLayersClassifier` train only the top transformer layers and the head on
hidden states of the frozen lower layers computed once: a real, but cheaper, kind of
fine-tuning (the notebook says so where it uses it).
"""

from __future__ import annotations

import copy
import hashlib
import inspect
import json
import math
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import torch

from . import settings
from .settings import CourseError

TrainFn = Callable[[dict, object, object, int], dict]


# ------------------------------------------------------------ configurations
def _check_space(space: dict) -> None:
    if not isinstance(space, dict) or not space:
        raise CourseError("the search space must be a non-empty dict {hyperparameter: values}")
    for name, values in space.items():
        if hasattr(values, "rvs"):  # a scipy.stats distribution (random search only)
            continue
        if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or not values:
            raise CourseError(f"search space entry {name!r} must be a non-empty list of values, "
                              f"got {values!r}")


def _plain(value):
    """numpy scalars -> Python numbers, so configurations serialise to JSON."""
    return value.item() if isinstance(value, np.generic) else value


def grid(space: dict) -> list[dict]:
    """Every combination of the values in ``space``, each exactly once (scikit-learn's
    ``ParameterGrid``), with the keys in the order ``space`` gives them."""
    from sklearn.model_selection import ParameterGrid

    _check_space(space)
    for name, values in space.items():
        if hasattr(values, "rvs"):
            raise CourseError(f"grid search needs a list for {name!r}, not a distribution; "
                              "use random_search for distributions")
    return [{k: _plain(point[k]) for k in space} for point in ParameterGrid(space)]


def sample(space: dict, n_trials: int, seed: int = 0) -> list[dict]:
    """``n_trials`` random configurations (scikit-learn's ``ParameterSampler``).

    A list is sampled uniformly; a scipy distribution such as
    ``scipy.stats.loguniform(1e-5, 1e-3)`` is sampled from. Random search finds good
    values of the one or two hyperparameters that matter with far fewer trials than a
    grid over all of them (Bergstra and Bengio, 2012).
    """
    from sklearn.model_selection import ParameterSampler

    _check_space(space)
    if n_trials < 1:
        raise CourseError(f"n_trials must be at least 1, got {n_trials}")
    points = []
    for point in ParameterSampler(space, n_iter=n_trials, random_state=seed):
        config = {k: _plain(point[k]) for k in space}
        config = {k: (float(f"{v:.3g}") if isinstance(v, float) else v)
                  for k, v in config.items()}  # readable values, stable keys
        if config not in points:
            points.append(config)
    return points


def trial_key(params: dict, seed: int, fold: int | None, data: Sequence[int] = ()) -> str:
    """A short hash that names one trial: same configuration, seed, fold and data sizes,
    same key. Stored trials are looked up by it when a search resumes."""
    text = json.dumps({"params": params, "seed": seed, "fold": fold, "data": list(data)},
                      sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:16]


# ------------------------------------------------------------------- storage
class TrialStore:
    """Finished trials, one JSON object per line, appended as each trial ends.

    Appending one line and flushing it to disk means a crash loses at most the trial that
    was running. A line cut short by a crash is skipped when reading, and the next append
    starts on a fresh line.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def load(self) -> dict[str, dict]:
        records = {}
        if not self.path.is_file():
            return records
        for line in self.path.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:  # the last line of an interrupted write
                continue
            if isinstance(record, dict) and "key" in record:
                records[record["key"]] = record
        return records

    def append(self, record: dict) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps(record, default=_plain) + "\n"
        needs_newline = (self.path.is_file() and self.path.stat().st_size > 0
                         and not self.path.read_bytes().endswith(b"\n"))
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(("\n" if needs_newline else "") + line)
            handle.flush()
            os.fsync(handle.fileno())


# --------------------------------------------------------------- data access
def _is_dataset_dict(obj) -> bool:
    """A ``DatasetDict`` or a plain dict of splits (a single split is never a mapping)."""
    return isinstance(obj, Mapping)


def _refuse_test(*splits) -> None:
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


# ------------------------------------------------------------------- results
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
        return [{k: _plain(v) for k, v in row.items() if not _missing(v)}
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
               seeds: Sequence[int] = (settings.DEFAULT_SEED,), folds: int | None = None,
               fold_seed: int = 0, store: str | os.PathLike | None = None,
               metric: str = "macro_f1", greater_is_better: bool = True,
               label_column: str = "labels", verbose: bool = True) -> SearchResult:
    """Run every (configuration, seed[, fold]) once and collect validation metrics.

    Without ``folds`` each trial trains on ``train`` and scores on ``validation``. With
    ``folds=k`` the validation split comes from ``train`` itself, fold by fold (give no
    ``validation``). There is deliberately no argument for a test split.
    """
    configs = [dict(c) for c in configs]
    if not configs:
        raise CourseError("no configurations to try")
    _refuse_test(train, validation)
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
            shown = ", ".join(f"{k}={_short(v)}" for k, v in params.items())
            print(f"trial {number}/{len(plan)}  {shown}  seed {seed}{where}:  "
                  f"{metric} {metrics[metric]:.3f}  ({record['seconds']:.1f} s)")
    if verbose:
        where = f" (stored in {saved.path})" if saved else ""
        print(f"{len(plan)} trials: {ran} run, {reused} read back from earlier runs{where}")
    return SearchResult(records, names, metric, greater_is_better, ran, reused)


def _missing(value) -> bool:
    """A hyperparameter that this configuration did not set (NaN in the frame)."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def _short(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


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


# ------------------------------------------------------ training a trial
class TrainerObjective:
    """The train function of a search, built on :class:`~course_lib.training.Trainer`.

    ``model_init(seed)`` returns a fresh model (pass the seed on:
    ``lambda seed: backbones.load_model(..., seed=seed)``); a fixed seed inside it would
    give every "seed" the same head and hide the seed variance. Hyperparameters named like
    :class:`~course_lib.training.TrainingConfig` fields go to the config; ``strategy`` (and
    ``strategy_<option>`` keys) go to ``course_lib.strategies.apply_strategy``.

    Each call returns the validation metrics of the best evaluation (the weights the
    Trainer keeps) plus the curves, which the store keeps for plots.
    """

    def __init__(self, model_init: Callable[[int], object], *, compute_metrics=None,
                 tokenizer=None, defaults: dict | None = None):
        from .training import TrainingConfig

        self.model_init = model_init
        self.compute_metrics = compute_metrics
        self.tokenizer = tokenizer
        self.config_fields = {f.name for f in fields(TrainingConfig)}
        self.defaults = {"verbose": False, "progress": False, **(defaults or {})}
        self._check_keys(self.defaults)

    def _check_keys(self, params: dict) -> None:
        unknown = [k for k in params if k not in self.config_fields and k != "strategy"
                   and not k.startswith("strategy_")]
        if unknown:
            raise CourseError(f"unknown hyperparameter {unknown[0]!r}: use a TrainingConfig "
                              "field (learning_rate, batch_size, epochs, warmup_ratio, "
                              "weight_decay, schedule, ...) or strategy / strategy_<option>")

    def fit(self, params: dict, train, validation, seed: int):
        """Train one configuration; returns ``(trainer, metrics)``."""
        from .training import Trainer, TrainingConfig

        merged = {**self.defaults, **params}
        self._check_keys(merged)
        config_args = {k: v for k, v in merged.items() if k in self.config_fields}
        config = TrainingConfig(**{**config_args, "seed": seed, "output_dir": None})
        settings.seed_everything(seed)
        model = self.model_init(seed)
        param_groups, callbacks = None, ()
        if "strategy" in merged:
            model, param_groups, callbacks = self._apply_strategy(model, merged, config)
        trainer = Trainer(model, config, train_dataset=train, eval_dataset=validation,
                          tokenizer=self.tokenizer, compute_metrics=self.compute_metrics,
                          param_groups=param_groups, callbacks=callbacks)
        history = trainer.train()
        return trainer, _metrics_of(history)

    def describe(self, params: dict) -> dict:
        """Everything that decides a trial's result: the defaults with ``params`` on top.

        The search keys stored trials by it, so ``{"learning_rate": 3e-4}`` and
        ``{"learning_rate": 3e-4, "batch_size": 8}`` (the default) are one trial, and
        changing a default makes old trials stale instead of silently reused.
        """
        merged = {**self.defaults, **params}
        return {k: merged[k] for k in sorted(merged) if k not in ("verbose", "progress")}

    def __call__(self, params: dict, train, validation, seed: int) -> dict:
        trainer, metrics = self.fit(params, train, validation, seed)
        del trainer
        return metrics

    @staticmethod
    def _apply_strategy(model, merged: dict, config):
        from .strategies import apply_strategy  # imported only when a grid uses strategies

        name = merged["strategy"]
        options = {k[len("strategy_"):]: v for k, v in merged.items()
                   if k.startswith("strategy_")}
        if name == "layerwise":  # its per-layer groups carry their own peak rate: the searched one
            options.setdefault("lr", config.learning_rate)
            options.setdefault("weight_decay", config.weight_decay)
        if "seed" in inspect.signature(apply_strategy).parameters:
            options.setdefault("seed", config.seed)  # new adapter/LoRA weights follow the trial
        plan = apply_strategy(model, name, **options)
        return plan.model, plan.param_groups, list(plan.callbacks or ())


def _metrics_of(history) -> dict:
    """Validation metrics at the kept (best) evaluation, plus the curves for plots."""
    if not history.evals:
        raise CourseError("the trial was never evaluated: set eval_every (default 'epoch')")
    best = next((e for e in history.evals if e["step"] == history.best_step), history.evals[-1])
    metrics = {k[len("eval_"):]: v for k, v in best.items() if k.startswith("eval_")}
    metrics.update({
        "best_epoch": best["epoch"], "epochs_run": history.evals[-1]["epoch"],
        "stopped_early": bool(history.stopped_early),
        "train_seconds": round(history.train_seconds, 2),
        "curve": [{k: v for k, v in e.items() if k == "epoch" or k == "step"
                   or k.startswith(("eval_", "train_loss"))} for e in history.evals],
        "steps": [{"step": s["step"], "train_loss": s["train_loss"], "lr": s["lr"]}
                  for s in history.steps],
    })
    return metrics


# --------------------------------------- cheap trials: train only the top layers
def _encoder_parts(model):
    """``(bert, dropout, classifier)`` of a BERT-style sequence classifier."""
    bert = getattr(model, "base_model", None)
    if bert is None or not hasattr(bert, "encoder") or not hasattr(model, "classifier"):
        raise CourseError("cache_lower_layers needs a BERT-style sequence-classification model "
                          "(backbones.load_model('classification', ...))")
    return bert, getattr(model, "dropout", None), model.classifier


def _attention_mask(bert, hidden, mask):
    """The mask in the form this attention implementation wants (as ``BertModel`` builds it)."""
    from transformers.masking_utils import create_bidirectional_mask

    return create_bidirectional_mask(config=bert.config, inputs_embeds=hidden,
                                     attention_mask=mask)


def cache_lower_layers(model, dataset, n_layers: int, batch_size: int = 64) -> list[dict]:
    """Hidden states after the embeddings and the first ``n_layers`` layers, per example.

    Frozen layers give the same output every epoch and every trial, so compute them once.
    Returns a list of ``{"inputs_embeds": (length, hidden), "attention_mask", "input_ids",
    "labels"}`` that the Trainer batches like tokenised text (``input_ids`` is kept only so
    that batches can be grouped by length). Runs in eval mode: no dropout below the cut.
    """
    from .batching import PadCollator, to_tensors

    bert, _, _ = _encoder_parts(model)
    if not 0 <= n_layers <= len(bert.encoder.layer):
        raise CourseError(f"n_layers={n_layers} but the model has {len(bert.encoder.layer)} "
                          "layers")
    examples = to_tensors(dataset, keep={"input_ids", "attention_mask", "token_type_ids",
                                         "labels"})
    order = sorted(range(len(examples)), key=lambda i: len(examples[i]["input_ids"]))
    collate = PadCollator(pad_token_id=getattr(bert.config, "pad_token_id", 0) or 0)
    was_training = bert.training
    device = next(bert.parameters()).device
    bert.eval()
    out: list[dict | None] = [None] * len(examples)
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            batch = {k: v.to(device) for k, v in collate([examples[i] for i in idx]).items()}
            hidden = bert.embeddings(input_ids=batch["input_ids"],
                                     token_type_ids=batch.get("token_type_ids"))
            mask = _attention_mask(bert, hidden, batch["attention_mask"])
            for layer in bert.encoder.layer[:n_layers]:
                hidden = layer(hidden, mask)
            for row, i in enumerate(idx):
                length = len(examples[i]["input_ids"])
                item = {"inputs_embeds": hidden[row, :length].float().cpu().clone(),
                        "attention_mask": examples[i]["attention_mask"],
                        "input_ids": examples[i]["input_ids"]}
                if "labels" in examples[i]:
                    item["labels"] = examples[i]["labels"]
                out[i] = item
    bert.train(was_training)
    return out


class UpperLayersClassifier(torch.nn.Module):
    """The layers above ``from_layer``, the pooler and a new classification head.

    Copies of a pretrained classifier's top layers, trained on the output of
    :func:`cache_lower_layers`. The head is created here from the current torch seed
    (seed right before building it), initialised as BERT initialises its heads. The
    forward is the full model's from ``from_layer`` up: in eval mode its logits equal those
    of the whole model with the same weights.
    """

    def __init__(self, model, from_layer: int, pooling: str = "cls"):
        super().__init__()
        if pooling not in ("cls", "mean"):
            raise CourseError(f"pooling={pooling!r}: choose 'cls' (the model's pooler) or 'mean'")
        bert, dropout, classifier = _encoder_parts(model)
        self.config = bert.config
        self.pooling = pooling
        self.layers = copy.deepcopy(bert.encoder.layer[from_layer:])
        self.pooler = copy.deepcopy(bert.pooler)
        self.dropout = copy.deepcopy(dropout) if dropout is not None else torch.nn.Identity()
        self.classifier = torch.nn.Linear(classifier.in_features, classifier.out_features)
        torch.nn.init.normal_(self.classifier.weight, mean=0.0,
                              std=getattr(self.config, "initializer_range", 0.02))
        torch.nn.init.zeros_(self.classifier.bias)

    def forward(self, inputs_embeds, attention_mask, labels=None, input_ids=None):
        hidden = inputs_embeds
        mask = _attention_mask(self, hidden, attention_mask)
        for layer in self.layers:
            hidden = layer(hidden, mask)
        if self.pooling == "mean":  # average over real tokens only (the mask keeps padding out)
            weights = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1.0)
        else:
            pooled = self.pooler(hidden) if self.pooler is not None else hidden[:, 0]
        logits = self.classifier(self.dropout(pooled))
        loss = None if labels is None else torch.nn.functional.cross_entropy(logits, labels)
        return {"loss": loss, "logits": logits}


# ------------------------------------------------------------------- plots
def plot_heatmap(result: SearchResult, x: str, y: str, title: str | None = None, ax=None):
    """Mean validation metric for every (x, y) cell of a two-hyperparameter grid."""
    import matplotlib.pyplot as plt

    table = result.summary().pivot(index=y, columns=x, values=f"{result.metric}_mean")
    table = table.sort_index().sort_index(axis=1)
    if ax is None:
        _, ax = plt.subplots(figsize=(1.6 * table.shape[1] + 2.2, 0.9 * table.shape[0] + 1.6))
    image = ax.imshow(table.to_numpy(), cmap="viridis", aspect="auto")
    ax.set_xticks(range(table.shape[1]), [_short(v) for v in table.columns])
    ax.set_yticks(range(table.shape[0]), [_short(v) for v in table.index])
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


__all__ = ["grid", "sample", "trial_key", "TrialStore", "labels_of", "subset",
           "stratified_subset", "kfold_indices", "HeldOutTest", "hold_out_test",
           "SearchResult", "run_trials", "grid_search", "random_search", "cross_validate",
           "repeat_seeds", "compare", "TrainerObjective", "cache_lower_layers",
           "UpperLayersClassifier", "plot_heatmap", "plot_spread", "plot_curves"]

