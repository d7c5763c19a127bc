"""Freezing: train only part of the model.

A frozen parameter (``requires_grad=False``) gets no gradient, so the optimizer
leaves it alone and the backward pass can stop below the lowest trained layer.
"""

from __future__ import annotations

from torch import nn

from ..settings import CourseError
from .anatomy import base_model, encoder_layers, set_trainable


def freeze(model: nn.Module, *, embeddings: bool = False, bottom_layers: int = 0,
           top_layers: int | None = None) -> nn.Module:
    """Freeze parts of the backbone in place; returns the model.

    ``embeddings``: freeze the embedding tables (half of a small BERT's weights).
    ``bottom_layers=k``: freeze the k lowest encoder layers (and the embeddings).
    ``top_layers=k``: train only the top k layers and the head (k=0: head only).
    Everything not named is made trainable, so calls do not accumulate.
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
