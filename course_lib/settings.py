"""One place for the switches that decide how big a run is and where it runs.

Environment variables (all optional):

- ``COURSE_PROFILE``  ``quick`` (default: the packaged compact BERT backbone, the
  bundled data in ``data/``, short schedules, a few minutes on a laptop CPU) or
  ``full`` (``bert-base-uncased`` or a domain checkpoint from the Hub, the full
  real datasets, the papers' schedules; meant for a GPU).
- ``COURSE_MODEL``    a Hub id or a local directory that replaces the backbone.
- ``COURSE_DATA_DIR`` a folder that holds the original files of the real datasets.
- ``COURSE_PROGRESS`` ``0`` hides progress bars (they are also hidden when ``CI`` is set).
- ``COURSE_MAX_STEPS`` a positive whole number: no training run takes more optimizer steps
  than that (:func:`max_steps_cap`). For smoke runs of every notebook on a CPU: the Trainer
  shortens its schedule to the cap (warmup and decay still complete, the final evaluation
  still happens); a notebook's own loop uses :func:`capped`. Every dataset split the
  course loads keeps at most :data:`SMOKE_EXAMPLES_PER_STEP` × that many examples (a QA
  split :data:`SMOKE_QUESTIONS_PER_STEP` × that many questions: :func:`max_examples_cap`),
  so evaluation is bounded too. Its numbers mean nothing.
- ``COURSE_SEED``     a whole number (default 42): the seed of the course's training runs
  (:func:`course_seed`): the default of ``TrainingConfig.seed`` and of the searches'
  seeds, and the ``SEED`` every notebook draws its new weights, dropout and shuffling from
  (with ``SEED + 1``, ... where it repeats a run). Data splits keep their own fixed seeds,
  so a second execution with another ``COURSE_SEED`` trains other models on the same
  data: a lesson that holds there was not a lucky draw.

The quick profile needs no network, so the course never waits on one: unless the
user set ``HF_HUB_OFFLINE`` themselves, the places where the course loads things
(the backbone loaders, the data Hub source) run inside :func:`hub_offline`, and the
course's own processes (a notebook's setup cell, the command line) go offline for
good with :func:`apply_offline_default`. Importing ``course_lib`` changes nothing:
a program that uses it as a library keeps its own network settings.

This module imports nothing else of the course; everything else imports it.
"""

from __future__ import annotations

import itertools
import os
import random
import sys
import warnings
from contextlib import contextmanager
from pathlib import Path

import numpy as np

PROFILES = ("quick", "full")
DEFAULT_SEED = 42

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_DIR = PACKAGE_DIR.parent
DATA_DIR = REPO_DIR / "data"


class CourseError(Exception):
    """An error whose message is one line a learner can act on.

    The command line prints it as ``error: <message>`` and exits non-zero;
    notebooks show it as a normal exception.
    """


def profile() -> str:
    """The active profile: ``quick`` unless ``COURSE_PROFILE`` says ``full``."""
    name = os.environ.get("COURSE_PROFILE", "quick").strip().lower() or "quick"
    if name not in PROFILES:
        raise CourseError(f"COURSE_PROFILE={name!r} is not one of {', '.join(PROFILES)}")
    return name


def is_quick() -> bool:
    return profile() == "quick"


def model_override() -> str | None:
    """``COURSE_MODEL`` if set: a Hub id or a local directory."""
    value = os.environ.get("COURSE_MODEL", "").strip()
    return value or None


def data_dir() -> Path | None:
    """``COURSE_DATA_DIR`` if set: where the original dataset files live."""
    value = os.environ.get("COURSE_DATA_DIR", "").strip()
    return Path(value).expanduser() if value else None


def max_steps_cap() -> int | None:
    """``COURSE_MAX_STEPS`` if set: the most optimizer steps any training run may take."""
    value = os.environ.get("COURSE_MAX_STEPS", "").strip()
    if not value:
        return None
    if not value.isdigit() or int(value) < 1:
        raise CourseError(f"COURSE_MAX_STEPS={value!r} is not a positive whole number of "
                          "optimizer steps; unset it for complete runs")
    return int(value)


def course_seed() -> int:
    """``COURSE_SEED`` if set, else :data:`DEFAULT_SEED`: the seed a notebook trains with."""
    value = os.environ.get("COURSE_SEED", "").strip()
    if not value:
        return DEFAULT_SEED
    if not value.isdigit():
        raise CourseError(f"COURSE_SEED={value!r} is not a whole number; unset it for the "
                          f"default seed {DEFAULT_SEED}")
    return int(value)


SMOKE_EXAMPLES_PER_STEP = 32
# A question over a real article is read as tens of windows (COVID-QA: about 20 of 384
# tokens), so a QA split keeps fewer examples for the same bound on evaluation.
SMOKE_QUESTIONS_PER_STEP = 4


def max_examples_cap(questions: bool = False) -> int | None:
    """With ``COURSE_MAX_STEPS`` (a smoke run): the most examples a loaded split keeps.

    A step cap alone leaves evaluation unbounded: reading a real test split with a
    bert-base-sized model on a CPU takes minutes per pass. The first examples of each split
    are kept (``SMOKE_EXAMPLES_PER_STEP`` per allowed step, or ``SMOKE_QUESTIONS_PER_STEP``
    for ``questions`` of a QA dataset), enough for every code path.
    """
    cap = max_steps_cap()
    if cap is None:
        return None
    return cap * (SMOKE_QUESTIONS_PER_STEP if questions else SMOKE_EXAMPLES_PER_STEP)


def append_record(variable: str, record: dict) -> None:
    """Append ``record`` (with ``COURSE_NOTEBOOK``) as one JSON line to the file named by the
    environment ``variable``; nothing when it is unset. The course's tools set these
    variables for the notebooks they run and read the lines back afterwards."""
    target = os.environ.get(variable, "").strip()
    if not target:
        return
    import json

    with open(target, "a", encoding="utf-8") as out:
        out.write(json.dumps({"notebook": os.environ.get("COURSE_NOTEBOOK", ""), **record}) + "\n")


def record_cost(kind: str, **fields) -> None:
    """One record of the smoke run's cost table, in ``COURSE_COSTS`` (set, with
    ``COURSE_NOTEBOOK``, by ``tools/smoke_full_profile.py``); without it this does nothing."""
    append_record("COURSE_COSTS", {"kind": kind, **fields})


def capped_steps(steps: int) -> int:
    """``steps``, or ``COURSE_MAX_STEPS`` when that is smaller (a schedule's total)."""
    cap = max_steps_cap()
    return steps if cap is None else min(steps, cap)


def capped(iterable):
    """At most ``COURSE_MAX_STEPS`` items of ``iterable`` (all of them when it is unset).

    For a notebook's own training loop, where one item is one optimizer step:
    ``for batch in settings.capped(batches):``. Inside an epoch loop it caps each epoch, so
    that loop's schedule counts ``epochs * capped_steps(batches_per_epoch)`` steps.
    """
    cap = max_steps_cap()
    return iter(iterable) if cap is None else itertools.islice(iterable, cap)


def shared_datasets_dir() -> Path | None:
    """The real datasets beside the project (``../shared/datasets``), if present.

    Tests and benchmarks use them; notebooks use them only through COURSE_DATA_DIR.
    """
    candidate = REPO_DIR.parent / "shared" / "datasets"
    return candidate if candidate.is_dir() else None


def show_progress() -> bool:
    """Progress bars in notebooks and terminals, but quiet under CI."""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        return False
    return os.environ.get("COURSE_PROGRESS", "1") != "0"


def _user_offline_choice() -> bool | None:
    """``HF_HUB_OFFLINE`` as the user set it (True/False), or None when unset."""
    value = os.environ.get("HF_HUB_OFFLINE")
    if value is None:
        return None
    return value.strip().lower() in ("1", "true", "yes", "on")


def is_offline() -> bool:
    """Whether the course keeps off the network: the user's ``HF_HUB_OFFLINE`` when set,
    otherwise yes in the quick profile (it needs nothing from the Hub) and no in full."""
    chosen = _user_offline_choice()
    return chosen if chosen is not None else profile() == "quick"


def _set_hub_offline(value: bool) -> None:
    """Tell every Hugging Face library that has already read the variable at import."""
    for module, name in (("huggingface_hub.constants", "HF_HUB_OFFLINE"),
                         ("datasets.config", "HF_HUB_OFFLINE"),
                         ("datasets.config", "HF_DATASETS_OFFLINE")):
        loaded = sys.modules.get(module)
        if loaded is not None and hasattr(loaded, name):
            setattr(loaded, name, value)


def apply_offline_default() -> None:
    """Put this whole process offline when :func:`is_offline` says so.

    Only for the course's own processes (a notebook's setup cell, ``python -m
    course_lib``); library code uses the scoped :func:`hub_offline` instead.
    """
    if is_offline() and _user_offline_choice() is None:
        os.environ["HF_HUB_OFFLINE"] = "1"
        _set_hub_offline(True)


@contextmanager
def hub_offline():
    """Inside the block the Hugging Face libraries stay offline when :func:`is_offline`
    says so; afterwards the environment and the libraries' flags are as they were.

    ``huggingface_hub`` and ``datasets`` read ``HF_HUB_OFFLINE`` once, at import, so
    setting the variable is not enough: their module flags are switched too.
    """
    if not is_offline() or _user_offline_choice() is not None:
        yield
        return
    import huggingface_hub.constants  # noqa: F401  (so its flag exists to be switched)

    before_env = os.environ.get("HF_HUB_OFFLINE")
    before = {(module, name): getattr(sys.modules[module], name)
              for module, name in (("huggingface_hub.constants", "HF_HUB_OFFLINE"),
                                   ("datasets.config", "HF_HUB_OFFLINE"),
                                   ("datasets.config", "HF_DATASETS_OFFLINE"))
              if module in sys.modules and hasattr(sys.modules[module], name)}
    os.environ["HF_HUB_OFFLINE"] = "1"
    _set_hub_offline(True)
    try:
        yield
    finally:
        if before_env is None:
            os.environ.pop("HF_HUB_OFFLINE", None)
        else:
            os.environ["HF_HUB_OFFLINE"] = before_env
        for (module, name), value in before.items():
            setattr(sys.modules[module], name, value)


class quiet_libraries:  # noqa: N801 - used like a function, as torch.set_grad_enabled is
    """Hide library chatter that buries a run's results: transformers' load reports and
    progress bars, and FutureWarnings (deprecation notes a learner cannot act on).

    Called plainly, it stays on (the command line, a notebook's setup cell). Used as
    ``with quiet_libraries():`` it is undone at the end of the block (library code that
    must leave the user's process as it found it, e.g. the backbone loaders).
    """

    def __init__(self) -> None:
        import transformers

        self._verbosity = transformers.logging.get_verbosity()
        self._bars = transformers.utils.logging.is_progress_bar_enabled()
        self._warnings = warnings.catch_warnings()  # saves the filters, restored on exit
        self._warnings.__enter__()
        transformers.logging.set_verbosity_error()
        transformers.utils.logging.disable_progress_bar()
        warnings.filterwarnings("ignore", category=FutureWarning)

    def __enter__(self) -> quiet_libraries:
        return self

    def __exit__(self, *exc) -> None:
        import transformers

        transformers.logging.set_verbosity(self._verbosity)
        if self._bars:
            transformers.utils.logging.enable_progress_bar()
        self._warnings.__exit__(*exc)


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the Hugging Face Hub (or ``HF_ENDPOINT``) answers within ``timeout`` seconds:
    asked before a download, so an unplugged laptop fails at once, not after retries."""
    import socket
    from urllib.parse import urlparse

    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    parsed = urlparse(endpoint)
    host = parsed.hostname or "huggingface.co"
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def get_device(prefer: str | None = None):
    """cuda, then mps, then cpu (or ``prefer`` when given)."""
    import torch

    if prefer:
        return torch.device(prefer)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def seed_everything(seed: int = DEFAULT_SEED) -> int:
    """Seed python, numpy and torch (CPU and every GPU).

    Call it *before* building a model: a new classification head, adapter or
    LoRA matrix draws its initial weights from the torch generator at creation.
    """
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    return seed


@contextmanager
def seeded(seed: int | None):
    """New weights created inside the block come from ``seed``, and the caller's random
    streams (dropout, shuffling, every other draw of a notebook) stay where they were.

    The torch generator (CPU and every GPU) is forked, seeded, and restored after the
    block. ``seed=None`` draws from the current stream instead (nothing is reseeded).
    Reseeding the global generator would be simpler, and would silently reset every
    stream of a learner who builds a second model halfway through a notebook.
    """
    if seed is None:
        yield
        return
    import torch

    with torch.random.fork_rng(devices=list(range(torch.cuda.device_count()))):
        torch.manual_seed(seed)
        yield
