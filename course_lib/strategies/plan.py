"""One call that prepares a model for a strategy: :func:`apply_strategy` -> :class:`StrategyPlan`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from torch import nn

from ..settings import CourseError
from ..training import Callback
from .adapters import adapters_of, add_adapters, encoder_layer_norms
from .anatomy import base_model, head_parameters, parameter_counts, set_trainable
from .freezing import freeze
from .layerwise import GradualUnfreezing, layerwise_param_groups
from .lora import add_lora
from .saving import save_adapter, save_for_pipeline

STRATEGIES = ("full", "freeze", "layerwise", "adapters", "lora")

# Peak learning rates (TrainingConfig.learning_rate) that work for the quick backbone
# (6 layers, 384 wide) with batch 32 and a few epochs; bert-base wants about 10x less
# for full fine-tuning. Fewer trained weights tolerate (and need) larger steps. For
# ``layerwise`` it is the top layer's rate; the layers below get less (see layerwise.py).
RECOMMENDED_LR = {"full": 2e-4, "freeze": 1e-3, "layerwise": 3e-4, "adapters": 1e-3,
                  "lora": 1e-3}
# Epochs of the command line's recipe: adapters and LoRA start from an exact copy
# of the backbone and move more slowly, so they get more epochs. Full fine-tuning's
# 6 were chosen on a validation split carved from FPB's training half (6 epochs beat
# 4 on accuracy at each of lr 1e-4, 2e-4 and 3e-4): benchmarks/full_recipe_fpb.py.
RECOMMENDED_EPOCHS = {"full": 6, "freeze": 4, "layerwise": 4, "adapters": 8, "lora": 8}

OPTIONS = {"full": set(), "freeze": {"embeddings", "bottom_layers", "top_layers"},
           "layerwise": {"decay", "weight_decay", "gradual", "unfreeze_every", "unfreeze_by",
                         "include_embeddings"},
           "adapters": {"reduction", "train_layernorm", "train_pooler"},
           "lora": {"r", "alpha", "dropout", "target_modules", "train_pooler"}}


@dataclass
class StrategyPlan:
    """Everything the Trainer needs for one strategy, and how to save the result.

    ``trainable`` counts the parameters that train at some point of the run
    (gradual unfreezing ends with all of them); ``total`` counts the model's
    parameters, new adapter or LoRA weights included.
    """

    name: str
    model: nn.Module
    param_groups: list[dict] | None = None
    callbacks: list[Callback] = field(default_factory=list)
    trainable: int = 0
    total: int = 0
    options: dict = field(default_factory=dict)

    @property
    def trainable_share(self) -> float:
        return self.trainable / self.total if self.total else 0.0

    def summary(self) -> str:
        return (f"{self.name}: {self.trainable:,} of {self.total:,} parameters train "
                f"({100 * self.trainable_share:.2f}%)")

    def save(self, directory, tokenizer=None, *, extra: Callable[[Path], None] | None = None
             ) -> Path:
        """A folder ``transformers.pipeline`` loads; see :func:`save_for_pipeline`."""
        return save_for_pipeline(self, directory, tokenizer, extra=extra)

    def save_adapter(self, directory) -> Path:
        """Only the task's own weights (adapters or LoRA + head); see :func:`save_adapter`."""
        return save_adapter(self.model, directory)


def _check_options(name: str, options: dict) -> None:
    if name not in STRATEGIES:
        raise CourseError(f"unknown strategy {name!r}; choose one of {', '.join(STRATEGIES)}")
    if name == "layerwise" and "lr" in options:
        raise CourseError("strategy 'layerwise' takes no lr: the top layer trains at "
                          "TrainingConfig.learning_rate and the layers below at decay x that")
    known = OPTIONS[name]
    unknown = set(options) - known
    if unknown:
        raise CourseError(f"strategy {name!r} has no option {', '.join(sorted(unknown))} "
                          f"(options: {', '.join(sorted(known)) or 'none'})")


def apply_strategy(model: nn.Module, name: str, *, seed: int | None = None,
                   **options) -> StrategyPlan:
    """Prepare ``model`` for strategy ``name`` (in place where possible).

    Options per strategy:

    - ``freeze``: ``embeddings``, ``bottom_layers``, ``top_layers`` (see :func:`freeze`)
    - ``layerwise``: ``decay`` (0.85), ``weight_decay`` (0.01), ``gradual`` (True),
      ``unfreeze_every`` (None/"epoch"/steps), ``unfreeze_by`` (0.5),
      ``include_embeddings`` (True). The peak rate is ``TrainingConfig.learning_rate``.
    - ``adapters``: ``reduction`` (16), ``train_layernorm`` (True), ``train_pooler`` (True)
    - ``lora``: ``r`` (8), ``alpha`` (16), ``dropout`` (0), ``target_modules``,
      ``train_pooler`` (True)

    ``seed``: new weights (adapters, LoRA) are drawn from it without touching the
    global random streams; ``None`` draws them from the current global stream.
    """
    _check_options(name, options)
    plan = StrategyPlan(name=name, model=model, options=dict(options))
    if name == "full":
        set_trainable(model.parameters(), True)
    elif name == "freeze":
        freeze(model, **options)
    elif name == "layerwise":
        set_trainable(model.parameters(), True)
        plan.param_groups = layerwise_param_groups(model, options.get("decay", 0.85),
                                                   options.get("weight_decay", 0.01))
        if options.get("gradual", True):
            plan.callbacks.append(GradualUnfreezing(
                model, every=options.get("unfreeze_every"),
                unfreeze_by=options.get("unfreeze_by", 0.5),
                include_embeddings=options.get("include_embeddings", True)))
    elif name == "adapters":
        set_trainable(model.parameters(), False)
        add_adapters(model, options.get("reduction", 16), seed=seed)
        set_trainable((p for a in adapters_of(model) for p in a.parameters()), True)
        set_trainable(head_parameters(model), True)
        if not options.get("train_pooler", True):
            set_trainable(base_model(model).pooler.parameters(), False)
        if options.get("train_layernorm", True):
            set_trainable(encoder_layer_norms(model), True)
    else:  # lora
        set_trainable(model.parameters(), False)
        plan.model = add_lora(model, seed=seed, **options)
    plan.trainable, plan.total = parameter_counts(plan.model)
    if name == "layerwise" and not options.get("include_embeddings", True):
        plan.trainable = plan.total - sum(
            p.numel() for p in base_model(model).embeddings.parameters())
    return plan
