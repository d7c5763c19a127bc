"""Model selection: log an evaluation, keep the best weights, stop early.

"Best" is judged on ``TrainingConfig.metric_for_best`` in the direction of
``TrainingConfig.maximise()`` (explicit ``greater_is_better``, or inferred: losses and
errors down, scores up). The loss evaluated is the loss the run trains on (a class-weighted
``compute_loss`` included), so the checkpoint kept is the one the objective prefers.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..settings import CourseError

if TYPE_CHECKING:
    from .loop import Trainer


def keep_best(trainer: Trainer, metrics: dict, epoch: float) -> dict:
    """Record ``metrics`` in the history; keep the weights if they are the best so far
    (in memory, and as ``output_dir/best``); count evaluations without progress."""
    cfg, history = trainer.config, trainer.history
    record = {"step": trainer.global_step, "epoch": round(epoch, 3),
              "train_seconds": round(history.train_seconds, 2)}
    since = history.evals[-1]["step"] if history.evals else 0
    recent = [s["train_loss"] for s in history.steps if s["step"] > since]
    if recent:
        record["train_loss"] = float(np.mean(recent))
    record.update({f"eval_{k}": v for k, v in metrics.items() if np.isscalar(v)})
    history.evals.append(record)
    key = f"eval_{cfg.metric_for_best}"
    if key not in record:
        raise CourseError(f"metric_for_best={cfg.metric_for_best!r} is not among the "
                          f"evaluation metrics {sorted(record)}")
    value, best = record[key], history.best_metric
    if best is None or (value > best if cfg.maximise() else value < best):
        history.best_metric, history.best_step = value, trainer.global_step
        trainer.bad_evals = 0
        trainer.best_state = {k: v.detach().to("cpu", copy=True)
                              for k, v in trainer.unwrapped_model.state_dict().items()}
        if cfg.output_dir and trainer.accelerator.is_main_process:
            trainer.save_model(Path(cfg.output_dir) / "best", metrics=record)
    else:
        trainer.bad_evals += 1
        if cfg.early_stopping_patience is not None and \
                trainer.bad_evals >= cfg.early_stopping_patience:
            trainer.stop_training = True
            history.stopped_early = True
    if cfg.verbose and trainer.accelerator.is_main_process:
        shown = "  ".join(f"{k} {v:.4f}" for k, v in record.items()
                          if k.startswith(("train_loss", "eval_")) and isinstance(v, float))
        note = "  (stopping early)" if trainer.stop_training else ""
        print(f"epoch {record['epoch']:.2f}  step {trainer.global_step}  {shown}{note}")
    for callback in trainer.callbacks:
        callback.on_evaluate(trainer, record)
    return record
