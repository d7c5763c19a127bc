"""Saving a strategy's result: a folder ``pipeline`` loads, or only the task's own weights.

- :func:`save_for_pipeline`: ``full``/``freeze``/``layerwise`` save as usual; LoRA is
  merged into the weights (a plain BERT folder, no ``peft`` needed to load it); a
  bottleneck-adapter model keeps its adapters and declares the model type
  ``course_adapter_bert`` (see :mod:`.adapters`).
- :func:`save_adapter` / :func:`load_adapter`: only what the task owns on a shared
  frozen backbone (adapters or LoRA matrices plus the head: about a megabyte instead
  of 90 MB); one backbone object can take one task after another.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from ..artifacts import save_atomically
from ..settings import CourseError
from .adapters import (
    ADAPTER_MODEL_TYPE,
    AdapterBertConfig,
    AdapterBertForSequenceClassification,
    adapters_of,
    add_adapters,
    reduction_of,
)
from .anatomy import base_model, encoder_layers

if TYPE_CHECKING:
    from .plan import StrategyPlan

ADAPTER_WEIGHTS = "adapter.safetensors"
ADAPTER_CONFIG = "course_adapter.json"


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
    ``course_lib.strategies``). Written atomically: a good folder is never
    half-replaced. ``extra(tmp_dir)`` may add files (a model card) before the swap.
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
                                       adapter_reduction=reduction_of(model))
            config.architectures = [AdapterBertForSequenceClassification.__name__]
            config.save_pretrained(tmp)
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp)
        if extra is not None:
            extra(tmp)

    return save_atomically(Path(directory), write)


def task_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The weights one task owns on a shared frozen backbone: everything that trains."""
    return {name: p.detach().cpu().contiguous() for name, p in model.named_parameters()
            if p.requires_grad}


def save_adapter(model: nn.Module, directory) -> Path:
    """Save only the task's weights: LoRA through ``peft`` (``adapter_model.safetensors``,
    the head included through the task type), bottleneck adapters as
    ``adapter.safetensors`` + ``course_adapter.json``. The head and trained LayerNorms
    go with them; the frozen backbone does not."""
    from safetensors.torch import save_file

    directory = Path(directory)
    if hasattr(model, "peft_config"):
        return save_atomically(directory, lambda tmp: model.save_pretrained(tmp))
    if not adapters_of(model):
        raise CourseError("this model has no adapters to save (use save_for_pipeline)")
    config = {"kind": "bottleneck", "reduction": reduction_of(model),
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
    elif reduction_of(model) != config["reduction"]:
        raise CourseError(f"{directory}: adapters with reduction {config['reduction']} do not "
                          f"fit this model's (reduction {reduction_of(model)})")
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
