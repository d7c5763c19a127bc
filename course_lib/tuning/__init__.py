"""Hyperparameter search and model selection, arranged so that the test split cannot leak.

The workflow the course teaches (notebook 09):

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

For lessons that need many runs on a CPU, :func:`course_lib.heads.cache_hidden_states`
and :class:`course_lib.heads.TopLayers` train only the top transformer layers and the
head on hidden states of the frozen lower layers computed once: a real, but cheaper,
kind of fine-tuning (the notebook says so where it uses it).

Modules: ``configs`` (grids, samples, trial keys), ``storage`` (the JSON Lines store),
``splits`` (data access, folds, the sealed test), ``search`` (running trials, results,
comparing configurations), ``objective`` (:class:`TrainerObjective`), ``plots``.
"""

from .configs import grid, sample, trial_key
from .objective import TrainerObjective
from .plots import plot_curves, plot_heatmap, plot_spread
from .search import (
    SearchResult,
    TrainFn,
    compare,
    cross_validate,
    grid_search,
    random_search,
    repeat_seeds,
    run_trials,
)
from .splits import HeldOutTest, hold_out_test, kfold_indices, labels_of, stratified_subset, subset
from .storage import TrialStore

__all__ = ["grid", "sample", "trial_key", "TrialStore", "labels_of", "subset",
           "stratified_subset", "kfold_indices", "HeldOutTest", "hold_out_test",
           "SearchResult", "TrainFn", "run_trials", "grid_search", "random_search",
           "cross_validate", "repeat_seeds", "compare", "TrainerObjective", "plot_heatmap",
           "plot_spread", "plot_curves"]
