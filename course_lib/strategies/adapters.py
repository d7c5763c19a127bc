"""Houlsby bottleneck adapters, written out, and a transformers model class that holds them.

An adapter is a small residual MLP inserted into every layer of a frozen backbone;
only the adapters (and the head) train. It cannot be merged into the weights (it has
a non-linearity), so a saved adapter model declares its own model type,
``course_adapter_bert``, registered here with transformers' Auto classes: after
``import course_lib.strategies``, ``from_pretrained`` and ``pipeline`` load it
without remote code.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import (
    AutoConfig,
    AutoModelForSequenceClassification,
    BertConfig,
    BertForSequenceClassification,
)

from .. import settings
from ..settings import CourseError
from .anatomy import base_model, encoder_layers

ADAPTER_MODEL_TYPE = "course_adapter_bert"


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

    Only inserts; :func:`~course_lib.strategies.apply_strategy` decides what trains.
    ``seed``: the new weights are drawn from it without touching the global random
    streams (``None``: from the current global stream).
    """
    layers = encoder_layers(model)
    hidden = base_model(model).config.hidden_size
    if reduction < 1 or hidden // reduction < 1:
        raise CourseError(f"reduction={reduction} must be between 1 and {hidden}")
    adapters = []
    with settings.seeded(seed):
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


def reduction_of(model: nn.Module) -> int:
    """The bottleneck reduction of the adapters in ``model``."""
    adapter = adapters_of(model)[0]
    return adapter.down.in_features // adapter.down.out_features


def encoder_layer_norms(model: nn.Module) -> list[nn.Parameter]:
    """The LayerNorm weights inside the encoder (cheap to train next to adapters)."""
    return [p for name, p in encoder_layers(model).named_parameters() if "LayerNorm" in name]


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
