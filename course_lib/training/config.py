"""What a run is told (:class:`TrainingConfig`) and what it gives back (:class:`History`,
:class:`Predictions`).

Plain dataclasses: a config can be printed, compared and stored in a checkpoint, so a
resumed run can check that it continues the same recipe.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from .. import settings
from ..settings import CourseError
from .precision import native_bf16

# Fields that change what is shown or where files go, not the maths of training: a resumed
# run may set them differently from the interrupted one.
NOT_MATH_FIELDS = frozenset({"progress", "verbose", "log_every", "output_dir", "save_every",
                             "eval_batch_size"})
LOSS_LIKE = ("loss", "perplexity", "error", "mse", "mae", "rmse")


@dataclass
class TrainingConfig:
    """Hyperparameters of a run. The defaults are the course's recipe for the quick
    backbone (a 6-layer, 384-wide BERT): it needs a higher learning rate than
    ``bert-base-uncased`` (2e-4 here; 2e-5 to 5e-5 for bert-base).

    ``eval_every`` only applies when the Trainer has an ``eval_dataset``: without one the
    run trains on and keeps its final weights. ``greater_is_better`` says which way
    ``metric_for_best`` improves; ``None`` infers it from the name: names that contain
    ``loss``, ``perplexity``, ``error``, ``mse``/``mae``/``rmse`` are minimised, every other
    metric (accuracy, F1, exact match...) is maximised. Set it explicitly for anything else.
    """

    learning_rate: float = 2e-4
    epochs: float = 3
    batch_size: int = 32
    eval_batch_size: int = 64
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    schedule: str = "linear"  # linear | cosine | constant | slanted_triangular
    gradient_accumulation_steps: int = 1
    max_grad_norm: float | None = 1.0
    eval_every: str | int | None = "epoch"  # "epoch", a number of steps, or None
    metric_for_best: str = "loss"  # "loss" or a key returned by compute_metrics
    greater_is_better: bool | None = None  # None: inferred from metric_for_best's name
    early_stopping_patience: int | None = None
    load_best_at_end: bool = True
    group_by_length: bool = True
    mixed_precision: str = "auto"  # auto | no | bf16 | fp16
    seed: int = field(default_factory=settings.course_seed)  # COURSE_SEED, 42 unless set
    max_steps: int | None = None  # overrides epochs when set
    output_dir: str | None = None  # checkpoints and the best model go here
    save_every: str | int | None = "eval"  # resume checkpoints: "eval", "epoch", N steps, None
    log_every: int = 10
    progress: bool | None = None  # None: shown in notebooks/terminals, hidden under CI
    verbose: bool = True  # one line per evaluation

    def resolved_mixed_precision(self) -> str:
        """``auto``: bf16 on GPUs that compute in bf16 natively (Ampere, compute capability
        8.0, and newer), fp16 with loss scaling on older GPUs (T4, V100: they only emulate
        bf16, which ``torch.cuda.is_bf16_supported()`` counts as support), fp32 on CPU."""
        if self.mixed_precision != "auto":
            return self.mixed_precision
        if torch.cuda.is_available():
            return "bf16" if native_bf16() else "fp16"
        return "no"

    def maximise(self) -> bool:
        """Whether a larger ``metric_for_best`` is better (explicit setting wins)."""
        if self.greater_is_better is not None:
            return self.greater_is_better
        name = self.metric_for_best.lower()
        return not any(word in name for word in LOSS_LIKE)

    def check_same_recipe(self, saved: dict) -> None:
        """Refuse to resume a checkpoint written with different hyperparameters."""
        current = asdict(self)
        differ = sorted(k for k in set(saved) | set(current)
                        if k not in NOT_MATH_FIELDS and saved.get(k) != current.get(k))
        if differ:
            shown = ", ".join(f"{k} {saved.get(k)!r} -> {current.get(k)!r}" for k in differ)
            raise CourseError(f"cannot resume: the checkpoint was written with other settings "
                              f"({shown}); use the same settings or a new output folder")


@dataclass
class Predictions:
    """Everything a model produced on a dataset, in the dataset's order."""

    outputs: dict[str, np.ndarray]
    labels: dict[str, np.ndarray]
    loss: float | None = None

    @property
    def logits(self) -> np.ndarray:
        return self.outputs["logits"]

    @property
    def label_ids(self) -> np.ndarray | None:
        return self.labels.get("labels")

    @property
    def predictions(self) -> np.ndarray:
        return self.logits.argmax(-1)


@dataclass
class History:
    """Training log: ``steps`` (train loss, learning rate) and ``evals`` (metrics)."""

    steps: list[dict] = field(default_factory=list)
    evals: list[dict] = field(default_factory=list)
    train_seconds: float = 0.0
    stopped_early: bool = False
    best_step: int | None = None
    best_metric: float | None = None

    def to_frame(self):
        import pandas as pd

        return pd.DataFrame(self.evals)

    def steps_frame(self):
        import pandas as pd

        return pd.DataFrame(self.steps)

    @property
    def final(self) -> dict:
        return self.evals[-1] if self.evals else {}
