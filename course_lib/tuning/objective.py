"""The train function of a search, built on the course Trainer."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import fields

from .. import settings
from ..settings import CourseError
from ..training import Trainer, TrainingConfig


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
        from ..strategies import apply_strategy  # imported only when a grid uses strategies

        name = merged["strategy"]
        options = {k[len("strategy_"):]: v for k, v in merged.items()
                   if k.startswith("strategy_")}
        if name == "layerwise":  # its groups carry their own weight decay: the searched one
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

