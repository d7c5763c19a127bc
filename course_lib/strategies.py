"""How much of BERT to train: five fine-tuning strategies behind one call.

``plan = apply_strategy(model, name, **options)`` prepares a classification model
for one strategy and returns a :class:`StrategyPlan`: the (possibly wrapped)
model, the optimizer's parameter groups, the Trainer callbacks, and how many
parameters will train. Pass them straight to the Trainer::

    plan = apply_strategy(model, "adapters", seed=42)
    trainer = Trainer(plan.model, config, param_groups=plan.param_groups,
                      callbacks=plan.callbacks, ...)
    trainer.train()
    plan.save("out/model", tokenizer)      # a folder transformers.pipeline loads

=============  ===============================================================
``full``       every weight trains (the baseline)
``freeze``     freeze the embeddings, the bottom k encoder layers, or everything
               but the top k layers and the head (k = 0: only the head trains)
``layerwise``  layer-wise learning-rate decay (each layer down gets ``decay`` times
               the rate of the one above) plus gradual unfreezing from the top, as
               in ULMFiT and FinBERT
``adapters``   Houlsby bottleneck adapters (written here) after the attention
               output and after the feed-forward output of every layer; the
               backbone is frozen
``lora``       low-rank updates of the attention and feed-forward matrices, through
               ``peft``; the backbone is frozen
=============  ===============================================================

The "head" is everything above the encoder: BERT's pooler and the classifier.

Saving: ``full``/``freeze``/``layerwise`` save as usual; LoRA is merged into the
weights (a plain BERT folder, no ``peft`` needed to load it); a bottleneck adapter
cannot be merged (it has a non-linearity), so its folder declares the model type
``course_adapter_bert``, which this module registers with transformers' Auto
classes: ``import course_lib.strategies`` and ``pipeline`` loads it (no remote code).
``save_adapter`` / ``load_adapter`` save and load only the task's own weights
(adapters or LoRA matrices plus the head: about a megabyte instead of 90 MB).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn
from transformers import (
    AutoConfig,
    AutoModelForSequenceClassification,
    BertConfig,
    BertForSequenceClassification,
)

from . import settings
from .backbones import count_parameters
from .settings import CourseError
from .training import Callback, save_atomically

STRATEGIES = ("full", "freeze", "layerwise", "adapters", "lora")

# Peak learning rates that work for the quick backbone (6 layers, 384 wide) with
# batch 32 and a few epochs; bert-base wants about 10x less for full fine-tuning.
# Fewer trained weights tolerate (and need) larger steps.
RECOMMENDED_LR = {"full": 2e-4, "freeze": 1e-3, "layerwise": 3e-4, "adapters": 1e-3,
                  "lora": 1e-3}
# Epochs of the command line's recipe: adapters and LoRA start from an exact copy
# of the backbone and move more slowly, so they get more epochs. Full fine-tuning's
# 6 were chosen on a validation split carved from FPB's training half (6 epochs beat
# 4 on accuracy at each of lr 1e-4, 2e-4 and 3e-4): benchmarks/full_recipe_fpb.py.
RECOMMENDED_EPOCHS = {"full": 6, "freeze": 4, "layerwise": 4, "adapters": 8, "lora": 8}

ADAPTER_MODEL_TYPE = "course_adapter_bert"
ADAPTER_WEIGHTS = "adapter.safetensors"
ADAPTER_CONFIG = "course_adapter.json"


# ------------------------------------------------------------ model anatomy
def base_model(model: nn.Module) -> nn.Module:
    """The encoder inside a task model (``model.bert`` for BERT, ``model`` itself
    for a bare encoder); PEFT wrappers are looked through."""
    if hasattr(model, "get_base_model"):  # a peft.PeftModel
        model = model.get_base_model()
    base = getattr(model, "base_model", model)
    if not hasattr(base, "embeddings"):
        raise CourseError(f"{type(model).__name__} has no .embeddings: the strategies need a "
                          "BERT-style encoder (BERT, RoBERTa, ELECTRA...)")
    return base


def encoder_layers(model: nn.Module) -> nn.ModuleList:
    """The stack of transformer layers, bottom first."""
    base = base_model(model)
    encoder = getattr(base, "encoder", None) or getattr(base, "transformer", None)
    layers = getattr(encoder, "layer", None)
    if layers is None:
        raise CourseError(f"{type(model).__name__}: no encoder.layer list found")
    return layers


def head_parameters(model: nn.Module) -> list[nn.Parameter]:
    """Parameters above the encoder (pooler + classifier): the task's own head."""
    base = base_model(model)
    inside = {id(p) for p in base.embeddings.parameters()}
    inside |= {id(p) for p in encoder_layers(model).parameters()}
    return [p for p in model.parameters() if id(p) not in inside]


def units_top_down(model: nn.Module) -> list[tuple[str, list[nn.Parameter]]]:
    """``[("head", ...), ("layer 5", ...), ..., ("layer 0", ...), ("embeddings", ...)]``.

    The order in which layer-wise methods treat the model: the head is the most
    task-specific, the embeddings the most general.
    """
    layers = encoder_layers(model)
    units = [("head", head_parameters(model))]
    for i in reversed(range(len(layers))):
        units.append((f"layer {i}", list(layers[i].parameters())))
    units.append(("embeddings", list(base_model(model).embeddings.parameters())))
    return units


def set_trainable(params, flag: bool) -> None:
    for p in params:
        p.requires_grad_(flag)


# ----------------------------------------------------------------- freezing
def freeze(model: nn.Module, *, embeddings: bool = False, bottom_layers: int = 0,
           top_layers: int | None = None) -> nn.Module:
    """Freeze parts of the backbone in place; returns the model.

    ``embeddings``: freeze the embedding tables (half of a small BERT's weights).
    ``bottom_layers=k``: freeze the k lowest encoder layers (and the embeddings).
    ``top_layers=k``: train only the top k layers and the head (k=0: head only).
    A frozen parameter gets no gradient, so the optimizer leaves it alone.
    """
    layers = encoder_layers(model)
    n = len(layers)
    if top_layers is not None:
        if not 0 <= top_layers <= n:
            raise CourseError(f"top_layers={top_layers} must be between 0 and {n}")
        bottom_layers, embeddings = n - top_layers, True
    if not 0 <= bottom_layers <= n:
        raise CourseError(f"bottom_layers={bottom_layers} must be between 0 and {n}")
    set_trainable(model.parameters(), True)
    if embeddings or bottom_layers:
        set_trainable(base_model(model).embeddings.parameters(), False)
    for layer in layers[:bottom_layers]:
        set_trainable(layer.parameters(), False)
    return model


# --------------------------------------------------- layer-wise learning rates
def _split_decay(params: list[nn.Parameter], names: dict[int, str]):
    """BERT's convention: no weight decay on biases and LayerNorm weights."""
    decay, no_decay = [], []
    for p in params:
        name = names.get(id(p), "")
        (no_decay if p.ndim < 2 or "norm" in name.lower() else decay).append(p)
    return decay, no_decay


def layerwise_param_groups(model: nn.Module, lr: float, decay: float = 0.85,
                           weight_decay: float = 0.01) -> list[dict]:
    """AdamW groups with layer-wise learning-rate decay (Howard & Ruder 2018; Sun et al. 2019).

    The head and the top layer get ``lr``; every layer below gets ``decay`` times
    the rate of the layer above; the embeddings come last. Lower layers hold
    general language knowledge that small, task-specific data should barely move.
    Frozen parameters are included, so gradual unfreezing can switch them on later.
    """
    if not 0 < decay <= 1:
        raise CourseError(f"decay={decay} must be in (0, 1]")
    names = {id(p): n for n, p in model.named_parameters()}
    groups = []
    for depth, (unit, params) in enumerate(units_top_down(model)):
        unit_lr = lr * decay ** max(0, depth - 1)  # head (0) and top layer (1) share lr
        decay_params, no_decay_params = _split_decay(params, names)
        for part, wd in ((decay_params, weight_decay), (no_decay_params, 0.0)):
            if part:
                groups.append({"params": part, "lr": unit_lr, "weight_decay": wd, "name": unit})
    return groups


class GradualUnfreezing(Callback):
    """Start with only the head trainable; unfreeze one more unit from the top at a time.

    ``every``: ``"epoch"`` (ULMFiT: one layer per epoch), a number of optimizer
    steps, or ``None``: spread the unfreezing so that everything is trainable after
    ``unfreeze_by`` of the run (0.5 = half way), whatever the run's length.
    ``include_embeddings=False`` leaves the embedding tables frozen for good.
    ``events`` records ``(step, unit)`` for plots.
    """

    changes_trainable_parameters = True  # data parallelism must expect frozen weights

    def __init__(self, model: nn.Module, every: str | int | None = None,
                 unfreeze_by: float = 0.5, include_embeddings: bool = True):
        self.model = model
        self.units = units_top_down(model)
        if not include_embeddings:
            self.units = self.units[:-1]
        self.every = every
        self.unfreeze_by = unfreeze_by
        self.thawed = 0
        self.events: list[tuple[int, str]] = []

    def _thaw_until(self, count: int, step: int) -> None:
        count = min(count, len(self.units))
        while self.thawed < count:
            name, params = self.units[self.thawed]
            set_trainable(params, True)
            self.events.append((step, name))
            self.thawed += 1

    def on_train_begin(self, trainer) -> None:
        set_trainable(self.model.parameters(), False)
        self.thawed = 0
        self.events = []
        if self.every is None:
            total = getattr(trainer, "total_steps", 1)
            self.interval = max(1, int(total * self.unfreeze_by / max(1, len(self.units) - 1)))
        elif self.every != "epoch":
            self.interval = int(self.every)
        self._thaw_until(1, step=getattr(trainer, "global_step", 0))

    def on_epoch_begin(self, trainer, epoch: int) -> None:
        if self.every == "epoch":
            self._thaw_until(epoch + 1, step=trainer.global_step)

    def on_step_end(self, trainer, step: int) -> None:
        if self.every != "epoch":
            self._thaw_until(1 + step // self.interval, step=step)


# ------------------------------------------------------ bottleneck adapters
class BottleneckAdapter(nn.Module):
    """``x + up(gelu(down(x)))``: a small residual MLP through a narrow bottleneck.

    ``up`` starts at zero, so a freshly inserted adapter is the identity and the
    model starts exactly where the pretrained one was (Houlsby et al. 2019 use a
    near-zero initialisation for the same reason).
    """

    def __init__(self, hidden_size: int, bottleneck: int):
        super().__init__()
        self.down = nn.Linear(hidden_size, bottleneck)
        self.up = nn.Linear(bottleneck, hidden_size)
        self.act = nn.GELU()
        nn.init.normal_(self.down.weight, std=0.02)
        nn.init.zeros_(self.down.bias)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.up(self.act(self.down(x)))


class AdaptedOutput(nn.Module):
    """A BERT sub-layer output (projection, dropout, residual + LayerNorm) with an
    adapter after the projection, before the residual: Houlsby's placement.

    It keeps the original ``dense``/``dropout``/``LayerNorm`` modules, so their
    weights keep their names and a checkpoint of the backbone still matches.
    """

    def __init__(self, original: nn.Module, adapter: BottleneckAdapter):
        super().__init__()
        self.dense = original.dense
        self.dropout = original.dropout
        self.LayerNorm = original.LayerNorm
        self.adapter = adapter

    def forward(self, hidden_states: torch.Tensor, input_tensor: torch.Tensor) -> torch.Tensor:
        projected = self.dropout(self.dense(hidden_states))
        return self.LayerNorm(self.adapter(projected) + input_tensor)


def adapter_parameter_count(hidden_size: int, reduction: int, num_layers: int) -> int:
    """``2 adapters x L layers x (2·d·m + d + m)`` with ``m = d // reduction``."""
    m = hidden_size // reduction
    return 2 * num_layers * (2 * hidden_size * m + hidden_size + m)


def add_adapters(model: nn.Module, reduction: int = 16, *, seed: int | None = None
                 ) -> list[BottleneckAdapter]:
    """Insert two adapters into every encoder layer (after attention, after feed-forward).

    Only inserts; :func:`apply_strategy` decides what trains. ``seed`` is set right
    before the new weights are drawn.
    """
    layers = encoder_layers(model)
    hidden = base_model(model).config.hidden_size
    if reduction < 1 or hidden // reduction < 1:
        raise CourseError(f"reduction={reduction} must be between 1 and {hidden}")
    if seed is not None:
        settings.seed_everything(seed)
    adapters = []
    for layer in layers:
        for owner, attr in ((layer.attention, "output"), (layer, "output")):
            original = getattr(owner, attr)
            if isinstance(original, AdaptedOutput):
                raise CourseError("this model already has adapters")
            adapter = BottleneckAdapter(hidden, hidden // reduction).to(
                original.dense.weight.device)
            setattr(owner, attr, AdaptedOutput(original, adapter))
            adapters.append(adapter)
    return adapters


def adapters_of(model: nn.Module) -> list[BottleneckAdapter]:
    return [m for m in model.modules() if isinstance(m, BottleneckAdapter)]


def _encoder_layer_norms(model: nn.Module) -> list[nn.Parameter]:
    return [p for name, p in encoder_layers(model).named_parameters() if "LayerNorm" in name]


# -------------------------------------------------------------------- LoRA
LORA_TARGETS = r".*encoder\.layer\.\d+\..*(query|key|value|dense)$"


def add_lora(model: nn.Module, r: int = 8, alpha: int = 16, dropout: float = 0.1,
             target_modules: str | list[str] = LORA_TARGETS, *, train_pooler: bool = True,
             seed: int | None = None):
    """Wrap ``model`` with ``peft`` LoRA: ``W x + (alpha/r)·B A x``, ``B`` starting at zero.

    The default targets every linear map inside the encoder (attention and
    feed-forward); the head (pooler, classifier) trains fully and is saved with
    the LoRA weights (``modules_to_save``).
    """
    from peft import LoraConfig, get_peft_model

    head = ["classifier"] + (["pooler"] if train_pooler and getattr(
        base_model(model), "pooler", None) is not None else [])
    config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout,
                        target_modules=target_modules, modules_to_save=head)
    if seed is not None:
        settings.seed_everything(seed)  # A's initial values are random
    return get_peft_model(model, config)


def _count_peft(model) -> tuple[int, int]:
    """Trainable and total parameters of a PEFT model, counting each weight once
    (``modules_to_save`` keeps a frozen original beside the trained copy)."""
    trainable = total = 0
    for name, p in model.named_parameters():
        if ".original_module." in name:
            continue
        total += p.numel()
        trainable += p.numel() if p.requires_grad else 0
    return trainable, total


# ------------------------------------------------ caching the frozen bottom
@torch.inference_mode()
def cache_hidden_states(model: nn.Module, dataset, batch_size: int = 64
                        ) -> list[list[torch.Tensor]]:
    """Run the backbone once and keep every layer's output for every example.

    ``states[j][i]`` is example ``i`` after layer ``j`` (``j = 0``: the embeddings),
    a ``[length, hidden]`` tensor without padding. When the bottom ``L - k`` layers
    are frozen their output never changes, so training the top ``k`` layers can
    start from ``states[L - k]`` instead of recomputing the bottom every epoch.
    Dropout is off (eval mode), as it is for the frozen layers' outputs at test time.
    """
    from .batching import PadCollator, to_tensors

    base = base_model(model)
    was_training = base.training
    base.eval()
    examples = to_tensors(dataset, keep={"input_ids", "attention_mask", "token_type_ids"})
    collate = PadCollator(getattr(base.config, "pad_token_id", 0) or 0)
    layers = len(encoder_layers(model)) + 1
    states: list[list[torch.Tensor | None]] = [[None] * len(examples) for _ in range(layers)]
    order = sorted(range(len(examples)), key=lambda i: -len(examples[i]["input_ids"]))
    device = next(base.parameters()).device
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        batch = {k: v.to(device) for k, v in collate([examples[i] for i in idx]).items()}
        hidden = base(**batch, output_hidden_states=True).hidden_states
        for row, i in enumerate(idx):
            length = int(examples[i]["attention_mask"].sum())
            for j in range(layers):
                states[j][i] = hidden[j][row, :length].cpu().clone()
    base.train(was_training)
    return states


def cached_examples(states: list[list[torch.Tensor]], layer: int, dataset) -> list[dict]:
    """Training examples for :class:`TopLayers`: layer ``layer``'s cached output + labels."""
    labels = dataset["labels"]
    return [{"hidden_states": h, "attention_mask": torch.ones(len(h), dtype=torch.long),
             "input_ids": torch.zeros(len(h), dtype=torch.long), "labels": int(y)}
            for h, y in zip(states[layer], labels)]


class TopLayers(nn.Module):
    """The top ``k`` encoder layers, the pooler and the classifier of ``model``, fed
    with cached hidden states (see :func:`cache_hidden_states`).

    The modules are shared with ``model``, so training this trains ``model``'s own
    top layers and head. ``input_ids`` is accepted and ignored: the Trainer uses it
    only to group examples of similar length.
    """

    def __init__(self, model: nn.Module, k: int):
        super().__init__()
        layers = encoder_layers(model)
        if not 0 <= k <= len(layers):
            raise CourseError(f"k={k} must be between 0 and {len(layers)}")
        self.config = base_model(model).config
        self.layers = nn.ModuleList(list(layers)[len(layers) - k:])
        self.pooler = base_model(model).pooler
        self.dropout = model.dropout
        self.classifier = model.classifier

    def forward(self, hidden_states, attention_mask, labels=None, input_ids=None):
        from transformers.masking_utils import create_bidirectional_mask

        mask = create_bidirectional_mask(config=self.config, inputs_embeds=hidden_states,
                                         attention_mask=attention_mask)
        for layer in self.layers:
            hidden_states = layer(hidden_states, attention_mask=mask)
            if isinstance(hidden_states, tuple):
                hidden_states = hidden_states[0]
        logits = self.classifier(self.dropout(self.pooler(hidden_states)))
        loss = nn.functional.cross_entropy(logits, labels) if labels is not None else None
        return {"loss": loss, "logits": logits}


# -------------------------------------------------------------- the plan
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


def apply_strategy(model: nn.Module, name: str, *, seed: int | None = settings.DEFAULT_SEED,
                   **options) -> StrategyPlan:
    """Prepare ``model`` for strategy ``name`` (in place where possible).

    Options per strategy:

    - ``freeze``: ``embeddings``, ``bottom_layers``, ``top_layers`` (see :func:`freeze`)
    - ``layerwise``: ``lr`` (peak, default ``RECOMMENDED_LR["layerwise"]``),
      ``decay`` (0.85), ``weight_decay`` (0.01), ``gradual`` (True),
      ``unfreeze_every`` (None/"epoch"/steps), ``unfreeze_by`` (0.5)
    - ``adapters``: ``reduction`` (16), ``train_layernorm`` (True), ``train_pooler`` (True)
    - ``lora``: ``r`` (8), ``alpha`` (16), ``dropout`` (0.1), ``target_modules``,
      ``train_pooler`` (True)

    ``seed`` is set right before new weights (adapters, LoRA) are created.
    """
    if name not in STRATEGIES:
        raise CourseError(f"unknown strategy {name!r}; choose one of {', '.join(STRATEGIES)}")
    known = {"full": set(), "freeze": {"embeddings", "bottom_layers", "top_layers"},
             "layerwise": {"lr", "decay", "weight_decay", "gradual", "unfreeze_every",
                           "unfreeze_by", "include_embeddings"},
             "adapters": {"reduction", "train_layernorm", "train_pooler"},
             "lora": {"r", "alpha", "dropout", "target_modules", "train_pooler"}}[name]
    unknown = set(options) - known
    if unknown:
        raise CourseError(f"strategy {name!r} has no option {', '.join(sorted(unknown))} "
                          f"(options: {', '.join(sorted(known)) or 'none'})")
    plan = StrategyPlan(name=name, model=model, options=dict(options))
    if name == "full":
        set_trainable(model.parameters(), True)
    elif name == "freeze":
        freeze(model, **options)
    elif name == "layerwise":
        set_trainable(model.parameters(), True)
        lr = options.get("lr", RECOMMENDED_LR["layerwise"])
        plan.param_groups = layerwise_param_groups(model, lr, options.get("decay", 0.85),
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
            set_trainable(_encoder_layer_norms(model), True)
    else:  # lora
        set_trainable(model.parameters(), False)
        plan.model = add_lora(model, seed=seed, **options)
    if name == "lora":
        plan.trainable, plan.total = _count_peft(plan.model)
    else:
        plan.trainable, plan.total = count_parameters(plan.model)
        if name == "layerwise" and not options.get("include_embeddings", True):
            plan.trainable = plan.total - sum(
                p.numel() for p in base_model(model).embeddings.parameters())
    return plan


# ----------------------------------------------------------------- saving
def mergeable_copy(model: nn.Module) -> nn.Module:
    """A plain transformers model with LoRA folded into its weights (``W + (alpha/r)·BA``).

    The training model is left untouched (merging works on a copy).
    """
    if hasattr(model, "merge_and_unload"):
        return copy.deepcopy(model).merge_and_unload()
    return model


def save_for_pipeline(plan: StrategyPlan, directory, tokenizer=None, *,
                      extra: Callable[[Path], None] | None = None) -> Path:
    """Save a folder that ``transformers.pipeline(task, model=directory)`` loads.

    LoRA is merged (a plain BERT checkpoint). Adapters stay as modules and the
    config declares ``model_type: course_adapter_bert`` (registered by importing
    this module). Written atomically: a good folder is never half-replaced.
    ``extra(tmp_dir)`` may add files (a model card) before the swap.
    """
    model = mergeable_copy(plan.model)
    is_adapter = bool(adapters_of(model))
    if is_adapter and getattr(model.config, "model_type", "") not in ("bert",
                                                                      ADAPTER_MODEL_TYPE):
        raise CourseError("saving a bottleneck-adapter model for pipeline works for BERT "
                          f"models, not {model.config.model_type!r}; use save_adapter() instead")

    def write(tmp: Path) -> None:
        model.save_pretrained(tmp)
        if is_adapter:
            config = AdapterBertConfig(**{**model.config.to_dict(), "model_type":
                                          ADAPTER_MODEL_TYPE},
                                       adapter_reduction=_reduction_of(model))
            config.architectures = [AdapterBertForSequenceClassification.__name__]
            config.save_pretrained(tmp)
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp)
        if extra is not None:
            extra(tmp)

    return save_atomically(Path(directory), write)


def _reduction_of(model: nn.Module) -> int:
    adapter = adapters_of(model)[0]
    return adapter.down.in_features // adapter.down.out_features


# ------------------------------------------------- adapter-only save/load
def task_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The weights one task owns on a shared frozen backbone: everything that trains."""
    return {name: p.detach().cpu().contiguous() for name, p in model.named_parameters()
            if p.requires_grad}


def save_adapter(model: nn.Module, directory) -> Path:
    """Save only the task's weights: LoRA through ``peft`` (``adapter_model.safetensors``),
    bottleneck adapters as ``adapter.safetensors`` + ``course_adapter.json``.
    The head and trained LayerNorms go with them; the frozen backbone does not."""
    from safetensors.torch import save_file

    directory = Path(directory)
    if hasattr(model, "peft_config"):
        return save_atomically(directory, lambda tmp: model.save_pretrained(tmp))
    if not adapters_of(model):
        raise CourseError("this model has no adapters to save (use save_for_pipeline)")
    config = {"kind": "bottleneck", "reduction": _reduction_of(model),
              "hidden_size": base_model(model).config.hidden_size,
              "num_layers": len(encoder_layers(model)),
              "id2label": {str(k): v for k, v in model.config.id2label.items()}}

    def write(tmp: Path) -> None:
        save_file(task_state(model), str(tmp / ADAPTER_WEIGHTS))
        (tmp / ADAPTER_CONFIG).write_text(json.dumps(config, indent=2))

    return save_atomically(directory, write)


def _resize_classifier(model: nn.Module, id2label: dict[int, str]) -> None:
    """Give ``model`` a classifier for these labels (another task's head may differ)."""
    n = len(id2label)
    classifier = getattr(model, "classifier", None)
    if classifier is None or not isinstance(classifier, nn.Linear):
        raise CourseError("load_adapter expects a model with a linear .classifier head")
    if classifier.out_features != n:
        model.classifier = nn.Linear(classifier.in_features, n).to(classifier.weight.device)
    model.config.id2label = dict(id2label)
    model.config.label2id = {v: k for k, v in id2label.items()}
    model.num_labels = model.config.num_labels = n


def load_adapter(model: nn.Module, directory):
    """Put a saved task (adapters or LoRA + head) onto ``model``; returns the model to use.

    For bottleneck adapters the same backbone object can take one task after
    another: adapters are inserted the first time and overwritten after that.
    """
    from safetensors.torch import load_file

    directory = Path(directory)
    if (directory / "adapter_config.json").is_file():
        from peft import PeftModel

        return PeftModel.from_pretrained(model, str(directory))
    config_path = directory / ADAPTER_CONFIG
    if not config_path.is_file():
        raise CourseError(f"{directory}: no {ADAPTER_CONFIG} or adapter_config.json found")
    config = json.loads(config_path.read_text())
    if not adapters_of(model):
        add_adapters(model, config["reduction"])
    elif _reduction_of(model) != config["reduction"]:
        raise CourseError(f"{directory}: adapters with reduction {config['reduction']} do not "
                          f"fit this model's (reduction {_reduction_of(model)})")
    _resize_classifier(model, {int(k): v for k, v in config["id2label"].items()})
    state = load_file(str(directory / ADAPTER_WEIGHTS))
    own = dict(model.named_parameters())
    unknown = [k for k in state if k not in own]
    if unknown:
        raise CourseError(f"{directory}: weights {unknown[:3]} do not match this model")
    with torch.no_grad():
        for key, value in state.items():
            own[key].copy_(value)
    return model


# ------------------------------------ a transformers class for adapter models
class AdapterBertConfig(BertConfig):
    """BERT plus Houlsby adapters of ``adapter_reduction`` in every layer."""

    model_type = ADAPTER_MODEL_TYPE

    def __init__(self, adapter_reduction: int = 16, **kwargs):
        super().__init__(**kwargs)
        self.adapter_reduction = adapter_reduction


class AdapterBertForSequenceClassification(BertForSequenceClassification):
    """``BertForSequenceClassification`` with the adapters built in, so that a saved
    adapter model loads with ``from_pretrained`` or ``pipeline`` (no remote code)."""

    config_class = AdapterBertConfig

    def __init__(self, config):
        super().__init__(config)
        add_adapters(self, config.adapter_reduction)


AutoConfig.register(ADAPTER_MODEL_TYPE, AdapterBertConfig, exist_ok=True)
AutoModelForSequenceClassification.register(AdapterBertConfig,
                                            AdapterBertForSequenceClassification, exist_ok=True)
