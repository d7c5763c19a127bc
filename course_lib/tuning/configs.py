"""Search spaces: every configuration of a grid, random samples, and the key of a trial."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence

import numpy as np

from ..settings import CourseError


def _check_space(space: dict) -> None:
    if not isinstance(space, dict) or not space:
        raise CourseError("the search space must be a non-empty dict {hyperparameter: values}")
    for name, values in space.items():
        if hasattr(values, "rvs"):  # a scipy.stats distribution (random search only)
            continue
        if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or not values:
            raise CourseError(f"search space entry {name!r} must be a non-empty list of values, "
                              f"got {values!r}")


def plain_value(value):
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
    return [{k: plain_value(point[k]) for k in space} for point in ParameterGrid(space)]


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
        config = {k: plain_value(point[k]) for k in space}
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


def is_missing(value) -> bool:
    """A hyperparameter that this configuration did not set (NaN in the frame)."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def short_text(value) -> str:
    """A hyperparameter value as printed in logs and plot labels (``3e-04`` -> ``0.0003``)."""
    return f"{value:g}" if isinstance(value, float) else str(value)

