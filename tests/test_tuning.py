import itertools
import json
import sys
import types
from collections import Counter

import numpy as np
import pytest
import torch

from course_lib import tuning
from course_lib.metrics import classification_metrics
from course_lib.settings import CourseError
from tests.conftest import TinyClassifier, toy_examples


def recorder(score=lambda params, seed: 0.5):
    """A train function that remembers what it was given and returns a made-up score."""
    calls = []

    def train_fn(params, train, validation, seed):
        calls.append({"params": dict(params), "seed": seed,
                      "train": [row["uid"] for row in train],
                      "validation": [row["uid"] for row in validation]})
        return {"macro_f1": score(params, seed)}

    train_fn.calls = calls
    return train_fn


def rows(n, labels=(0, 1), start=0):
    return [{"uid": start + i, "labels": labels[i % len(labels)]} for i in range(n)]


# ----------------------------------------------------------------- search
def test_grid_search_visits_every_point_once():
    space = {"learning_rate": [1e-4, 3e-4, 1e-3], "batch_size": [8, 16]}
    train_fn = recorder()
    result = tuning.grid_search(space, train_fn, rows(20), rows(6, start=100), verbose=False)
    visited = [(c["params"]["learning_rate"], c["params"]["batch_size"]) for c in train_fn.calls]
    assert len(visited) == 6 and len(set(visited)) == 6
    assert set(visited) == set(itertools.product(*space.values()))
    assert len(result.frame) == 6 and list(result.frame.columns[:2]) == list(space)
    assert len(result.summary()) == 6


def test_seeds_multiply_the_trials_and_summary_averages_them():
    space = {"learning_rate": [1e-4, 1e-3]}
    scores = {(1e-4, 0): 0.9, (1e-4, 1): 0.1, (1e-3, 0): 0.6, (1e-3, 1): 0.6}
    train_fn = recorder(lambda p, s: scores[(p["learning_rate"], s)])
    result = tuning.grid_search(space, train_fn, rows(10), rows(4, start=50), seeds=(0, 1),
                                verbose=False)
    assert len(train_fn.calls) == 4
    summary = result.summary().set_index("learning_rate")
    assert summary.loc[1e-4, "macro_f1_mean"] == pytest.approx(0.5)
    assert summary.loc[1e-4, "macro_f1_std"] == pytest.approx(np.std([0.9, 0.1], ddof=1))
    assert summary.loc[1e-3, "runs"] == 2
    # one lucky seed (0.9) does not win: selection uses the mean over seeds
    assert result.best_params() == {"learning_rate": 1e-3}


def test_grid_rejects_bad_spaces():
    for space in ({}, {"learning_rate": []}, {"schedule": "linear"}):
        with pytest.raises(CourseError):
            tuning.grid(space)
    from scipy.stats import loguniform

    with pytest.raises(CourseError, match="random_search"):
        tuning.grid({"learning_rate": loguniform(1e-5, 1e-3)})


def test_random_search_samples_lists_and_distributions():
    from scipy.stats import loguniform

    space = {"learning_rate": loguniform(1e-5, 1e-3), "batch_size": [8, 16, 32]}
    configs = tuning.sample(space, 5, seed=3)
    assert configs == tuning.sample(space, 5, seed=3)  # reproducible
    assert len(configs) == 5
    assert all(1e-5 <= c["learning_rate"] <= 1e-3 and c["batch_size"] in (8, 16, 32)
               for c in configs)
    json.dumps(configs)  # plain Python values, storable
    result = tuning.random_search(space, 4, recorder(), rows(10), rows(4, start=50),
                                  verbose=False)
    assert len(result.records) == 4


def test_missing_metric_is_a_clear_error():
    with pytest.raises(CourseError, match="accuracy"):
        tuning.grid_search({"epochs": [1]}, recorder(), rows(10), rows(4, start=50),
                           metric="accuracy", verbose=False)


# ------------------------------------------------------------------ folds
def test_folds_are_stratified_and_disjoint():
    labels = np.array([0] * 30 + [1] * 15 + [2] * 9)
    folds = tuning.kfold_indices(labels, k=3, seed=0)
    assert len(folds) == 3
    seen = np.concatenate([val for _, val in folds])
    assert sorted(seen) == list(range(len(labels)))  # every example validates exactly once
    for train_idx, val_idx in folds:
        assert not set(train_idx) & set(val_idx)
        assert len(train_idx) + len(val_idx) == len(labels)
        counts = Counter(labels[val_idx])
        assert counts[0] == 10 and counts[1] == 5 and counts[2] == 3  # the label mix is kept


def test_cross_validation_feeds_disjoint_folds():
    data = rows(30, labels=(0, 0, 1))
    train_fn = recorder()
    result = tuning.cross_validate({"learning_rate": 1e-3}, train_fn, data, folds=3,
                                   verbose=False)
    assert [r["fold"] for r in result.records] == [0, 1, 2]
    validated = [uid for c in train_fn.calls for uid in c["validation"]]
    assert sorted(validated) == list(range(30))
    for call in train_fn.calls:
        assert not set(call["train"]) & set(call["validation"])
        assert len(call["train"]) == 20
    with pytest.raises(CourseError, match="validation"):
        tuning.cross_validate({"epochs": 1}, train_fn, data, validation=rows(3), folds=3)


def test_too_many_folds_for_the_rarest_class():
    with pytest.raises(CourseError, match="rarest class"):
        tuning.kfold_indices([0] * 10 + [1] * 2, k=3)


# ------------------------------------------------------------- test split
def test_the_test_split_never_enters_selection():
    import datasets

    splits = {"train": rows(24), "validation": rows(8, start=100), "test": rows(8, start=200)}
    dsd = datasets.DatasetDict({k: datasets.Dataset.from_list(v) for k, v in splits.items()})
    development, test = tuning.hold_out_test(dsd)
    assert set(development) == {"train", "validation"}

    train_fn = recorder(lambda p, s: p["learning_rate"])
    result = tuning.grid_search({"learning_rate": [0.1, 0.3, 0.2]}, train_fn,
                                development["train"], development["validation"],
                                seeds=(0, 1), verbose=False)
    seen = {uid for c in train_fn.calls for uid in c["train"] + c["validation"]}
    assert seen and not seen & set(range(200, 208))  # no test example was ever seen
    assert result.best_params() == {"learning_rate": 0.3}

    # the search refuses anything that carries the test split
    with pytest.raises(CourseError, match="hold_out_test"):
        tuning.grid_search({"epochs": [1]}, train_fn, dsd, development["validation"])
    with pytest.raises(CourseError, match="held-out test"):
        tuning.grid_search({"epochs": [1]}, train_fn, development["train"], test)

    # and the sealed split opens exactly once
    assert "sealed" in repr(test) and len(test) == 8
    scores = test.evaluate(lambda split: {"n": len(split), "uids": list(split["uid"])})
    assert scores["uids"] == list(range(200, 208)) and test.result is scores
    with pytest.raises(CourseError, match="already used"):
        test.evaluate(lambda split: {})


# ----------------------------------------------------------------- resume
class Interrupt(Exception):
    pass


def test_an_interrupted_search_resumes(tmp_path):
    store = tmp_path / "runs" / "search.jsonl"
    space = {"learning_rate": [1e-4, 3e-4, 1e-3], "epochs": [1, 2]}
    first = recorder(lambda p, s: p["learning_rate"] * p["epochs"])
    calls = {"n": 0}

    def interrupted(params, train, validation, seed):
        calls["n"] += 1
        if calls["n"] == 3:
            raise Interrupt  # Ctrl-C, a crash, a closed laptop...
        return first(params, train, validation, seed)

    with pytest.raises(Interrupt):
        tuning.grid_search(space, interrupted, rows(10), rows(4, start=50), store=store,
                           verbose=False)
    assert len(store.read_text().splitlines()) == 2

    second = recorder(lambda p, s: p["learning_rate"] * p["epochs"])
    result = tuning.grid_search(space, second, rows(10), rows(4, start=50), store=store,
                                verbose=False)
    assert (result.ran, result.reused) == (4, 2)
    done_first = {json.dumps(c["params"], sort_keys=True) for c in first.calls}
    done_second = {json.dumps(c["params"], sort_keys=True) for c in second.calls}
    assert not done_first & done_second  # finished trials were not re-run
    assert len(result.frame) == 6 and len(store.read_text().splitlines()) == 6

    third = recorder()
    again = tuning.grid_search(space, third, rows(10), rows(4, start=50), store=store,
                               verbose=False)
    assert third.calls == [] and again.reused == 6
    assert again.frame["macro_f1"].tolist() == result.frame["macro_f1"].tolist()

    # different data sizes are different trials, not stale results
    other = recorder()
    tuning.grid_search(space, other, rows(12), rows(4, start=50), store=store, verbose=False)
    assert len(other.calls) == 6


def test_store_skips_a_line_cut_short_by_a_crash(tmp_path):
    store = tuning.TrialStore(tmp_path / "trials.jsonl")
    store.append({"key": "a", "value": 1})
    with open(store.path, "a") as handle:
        handle.write('{"key": "b", "val')  # the process died mid-write
    assert set(store.load()) == {"a"}
    store.append({"key": "c", "value": 3})
    assert set(store.load()) == {"a", "c"}


def test_trial_key_depends_on_everything_that_changes_a_result():
    base = tuning.trial_key({"learning_rate": 1e-3, "epochs": 2}, 0, None, (10, 4))
    assert base == tuning.trial_key({"epochs": 2, "learning_rate": 1e-3}, 0, None, (10, 4))
    for changed in (tuning.trial_key({"learning_rate": 1e-3, "epochs": 3}, 0, None, (10, 4)),
                    tuning.trial_key({"learning_rate": 1e-3, "epochs": 2}, 1, None, (10, 4)),
                    tuning.trial_key({"learning_rate": 1e-3, "epochs": 2}, 0, 1, (10, 4)),
                    tuning.trial_key({"learning_rate": 1e-3, "epochs": 2}, 0, None, (11, 4))):
        assert changed != base


def test_compare_measures_the_difference_against_the_noise():
    out = tuning.compare([0.80, 0.82, 0.84], [0.70, 0.72, 0.74])
    assert out["difference"] == pytest.approx(0.10)
    assert out["standard_error"] == pytest.approx(np.sqrt(2 * 0.02**2 / 3))
    assert out["p_value"] < 0.05 and out["significant"]
    assert out["min_difference"] < out["difference"]
    noisy = tuning.compare([0.70, 0.85, 0.75], [0.72, 0.80, 0.70])
    assert abs(noisy["difference"]) < 2 * noisy["standard_error"] and noisy["p_value"] > 0.05
    assert not noisy["significant"]
    # 3 runs each: a 5% test needs about 2.8 standard errors, not the large-sample 2
    assert out["min_difference"] > 2.7 * out["standard_error"]
    many = tuning.compare(np.r_[[0.80, 0.82] * 50], np.r_[[0.70, 0.72] * 50])
    assert many["min_difference"] == pytest.approx(1.97 * many["standard_error"], rel=0.01)
    # the significance verdict agrees with the p-value
    for pair in [([0.756, 0.78, 0.73], [0.718, 0.71, 0.725]), ([0.8, 0.81, 0.79], [0.7, 0.7, 0.71])]:
        c = tuning.compare(*pair)
        assert c["significant"] == (c["p_value"] < 0.05)
    with pytest.raises(CourseError):
        tuning.compare([0.8], [0.7, 0.6])


# ---------------------------------------------------- the Trainer objective
def test_trainer_objective_trains_and_selects_on_validation(toy_data):
    train, validation = toy_data
    seeds_seen = []

    def model_init(seed):
        seeds_seen.append(seed)
        return TinyClassifier()

    objective = tuning.TrainerObjective(
        model_init, compute_metrics=classification_metrics(["no", "yes"]),
        defaults={"epochs": 4, "batch_size": 8, "warmup_ratio": 0.0})
    result = tuning.grid_search({"learning_rate": [0.0, 0.05]}, objective, train, validation,
                                seeds=(0, 1), verbose=False)
    assert seeds_seen == [0, 1, 0, 1]
    summary = result.summary()
    assert result.best_params() == {"learning_rate": 0.05}
    assert summary.iloc[0]["macro_f1_mean"] >= 0.9 > summary.iloc[1]["macro_f1_mean"]
    record = result.record({"learning_rate": 0.05}, seed=0)["metrics"]
    assert len(record["curve"]) == 4 and record["steps"] and record["best_epoch"] >= 1
    assert {"loss", "accuracy", "macro_f1", "train_seconds"} <= set(record)


def test_trainer_objective_rejects_unknown_hyperparameters(toy_data):
    objective = tuning.TrainerObjective(lambda seed: TinyClassifier())
    with pytest.raises(CourseError, match="learnig_rate"):
        objective({"learnig_rate": 1e-3}, *toy_data, seed=0)


def test_strategy_is_imported_only_when_the_grid_uses_it(toy_data, monkeypatch):
    train, validation = toy_data
    objective = tuning.TrainerObjective(lambda seed: TinyClassifier(),
                                        compute_metrics=classification_metrics(["no", "yes"]),
                                        defaults={"epochs": 1, "batch_size": 16})
    monkeypatch.setitem(sys.modules, "course_lib.strategies", None)  # import would fail
    objective({"learning_rate": 0.01}, train, validation, seed=0)  # works without it

    seen = {}

    def apply_strategy(model, name, **options):
        seen.update(name=name, **options)
        for param in model.embed.parameters():
            param.requires_grad_(False)
        return types.SimpleNamespace(model=model, param_groups=None, callbacks=[],
                                     trainable=0, total=0, name=name)

    fake = types.ModuleType("course_lib.strategies")
    fake.apply_strategy = apply_strategy
    monkeypatch.setitem(sys.modules, "course_lib.strategies", fake)
    objective({"learning_rate": 0.01, "strategy": "freeze", "strategy_layers": 2},
              train, validation, seed=0)
    assert seen == {"name": "freeze", "layers": 2}

    def apply_with_seed(model, name, *, seed=42, **options):  # the real signature's shape
        seen.clear()
        seen.update(name=name, seed=seed, **options)
        return types.SimpleNamespace(model=model, param_groups=None, callbacks=[])

    fake.apply_strategy = apply_with_seed
    objective({"learning_rate": 0.02, "strategy": "layerwise"}, train, validation, seed=7)
    # the trial's seed reaches new weights; layer-wise groups take the searched weight decay
    # (and their rates follow learning_rate through the Trainer: no lr option any more)
    assert seen == {"name": "layerwise", "seed": 7, "weight_decay": 0.01}


# ------------------------------------------------- cheap trials: top layers only
@pytest.fixture(scope="module")
def tiny_bert():
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    config = BertConfig(vocab_size=60, hidden_size=16, num_hidden_layers=3,
                        num_attention_heads=2, intermediate_size=32, num_labels=3,
                        max_position_embeddings=32)
    return BertForSequenceClassification(config).eval()


def test_top_layers_on_cached_states_run_trials(tiny_bert):
    """The notebook's cheap trials: one cache of the frozen bottom (heads.cache_hidden_states),
    a fresh copy of the top layers and a new head per trial (heads.TopLayers)."""
    import copy

    from course_lib import heads, settings

    data = toy_examples(48, seed=4)
    cached = heads.cache_hidden_states(tiny_bert, data, 2)

    def model_init(seed):
        model = copy.deepcopy(tiny_bert)  # in the notebook: load_model(..., seed=seed)
        with settings.seeded(seed):
            torch.nn.init.normal_(model.classifier.weight, std=0.02)
        return heads.TopLayers(model, 2, pooling="mean")

    objective = tuning.TrainerObjective(
        model_init, compute_metrics=classification_metrics(["a", "b", "c"]),
        defaults={"epochs": 2, "batch_size": 16})
    before = {k: v.clone() for k, v in tiny_bert.state_dict().items()}
    result = tuning.repeat_seeds({"learning_rate": 1e-3}, objective, cached[:32], cached[32:],
                                 seeds=(0, 1), verbose=False)
    scores = result.scores()
    assert len(scores) == 2 and np.all((scores >= 0) & (scores <= 1))
    for name, value in tiny_bert.state_dict().items():  # the cached original is untouched
        assert torch.equal(value, before[name]), name


def test_stored_trials_are_keyed_by_the_full_configuration(tmp_path):
    store = tmp_path / "trials.jsonl"

    class Counting:
        def __init__(self, defaults):
            self.defaults, self.calls = defaults, 0

        def describe(self, params):  # what TrainerObjective.describe does
            return {**self.defaults, **params}

        def __call__(self, params, train, validation, seed):
            self.calls += 1
            return {"macro_f1": 0.5}

    fn = Counting({"batch_size": 8, "epochs": 3})
    tuning.run_trials([{"learning_rate": 3e-4}], fn, rows(10), rows(4, start=50), store=store,
                      verbose=False)
    same = tuning.run_trials([{"learning_rate": 3e-4, "batch_size": 8}], fn, rows(10),
                             rows(4, start=50), store=store, verbose=False)
    assert fn.calls == 1 and same.reused == 1
    assert list(same.frame.columns[:2]) == ["learning_rate", "batch_size"]
    changed = Counting({"batch_size": 8, "epochs": 4})  # a changed default: old trials are stale
    tuning.run_trials([{"learning_rate": 3e-4}], changed, rows(10), rows(4, start=50),
                      store=store, verbose=False)
    assert changed.calls == 1

    objective = tuning.TrainerObjective(lambda seed: TinyClassifier(), defaults={"epochs": 2})
    assert objective.describe({"learning_rate": 1e-3}) == {"epochs": 2, "learning_rate": 1e-3}


def test_best_configurations_keep_their_types():
    space = {"learning_rate": [1e-4, 1e-3], "batch_size": [8, 16]}
    result = tuning.grid_search(space, recorder(lambda p, s: p["learning_rate"] * p["batch_size"]),
                                rows(10), rows(4, start=50), verbose=False)
    top = result.top(2)
    assert top[0] == {"learning_rate": 1e-3, "batch_size": 16}
    assert all(type(c["batch_size"]) is int and type(c["learning_rate"]) is float for c in top)
    mixed = tuning.run_trials([{"learning_rate": 1e-3}, {"epochs": 4}],
                              recorder(lambda p, s: 0.9 if "epochs" in p else 0.1),
                              rows(10), rows(4, start=50), verbose=False)
    assert mixed.best_params() == {"epochs": 4}  # no NaN for the key it never set
