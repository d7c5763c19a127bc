"""Where things are inside a BERT-style model: the encoder, its layers, the head.

Every strategy needs the same few questions answered ("which parameters are the
head?", "which is layer 3?"), so they are answered once, here, for BERT, RoBERTa,
ELECTRA and the like, and for ``peft`` wrappers around them.
"""

from __future__ import annotations

from collections.abc import Iterable

from torch import nn

from ..settings import CourseError


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


def set_trainable(params: Iterable[nn.Parameter], flag: bool) -> None:
    """Switch gradients on or off; a frozen parameter is left alone by the optimizer."""
    for p in params:
        p.requires_grad_(flag)


def parameter_counts(model: nn.Module) -> tuple[int, int]:
    """``(trainable, total)`` parameters, from the libraries' own counters.

    A ``peft`` model: peft's trainable count; its total counts each head twice (with
    ``modules_to_save`` the frozen original stays beside the trained copy), so the total
    here skips the originals. A transformers model: ``num_parameters``. Anything else:
    :func:`course_lib.backbones.count_parameters`.
    """
    if hasattr(model, "get_nb_trainable_parameters"):
        trainable, _ = model.get_nb_trainable_parameters()
        total = sum(p.numel() for name, p in model.named_parameters()
                    if ".original_module." not in name)
        return int(trainable), int(total)
    if hasattr(model, "num_parameters"):
        return model.num_parameters(only_trainable=True), model.num_parameters()
    from ..backbones import count_parameters

    return count_parameters(model)
