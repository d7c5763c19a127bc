"""A Hugging Face encoder as a function ``tokens -> one state per token``, with an
optional input transform and frozen bottom layers."""

from __future__ import annotations

import torch
from torch import nn

from ..settings import CourseError
from ..strategies.anatomy import encoder_layers
from .cached import run_layers


class TokenEncoder(nn.Module):
    """A Hugging Face encoder as a function ``tokens -> one state per token``.

    - ``input_transform``: a module applied to the word embeddings, which are then
      fed through ``inputs_embeds`` (position and segment embeddings are added
      inside the backbone as usual).
    - ``frozen_layers=k``: the embeddings and the bottom ``k`` transformer layers
      get ``requires_grad=False``. Their output never changes, so it can be
      computed once (``cache_hidden_states(backbone, dataset, k)``) and passed back
      as ``hidden_states``; the forward then runs only the top layers. With every
      layer frozen, ``hidden_states`` are the final states and training touches
      only what sits on top (pooling and head).

    The backbone's own pooler (a ``[CLS]`` dense layer) is never used here, so it
    is frozen: trainable-parameter counts then report what really trains.
    """

    def __init__(self, backbone: nn.Module, *, input_transform: nn.Module | None = None,
                 frozen_layers: int = 0):
        super().__init__()
        self.backbone = backbone
        self.input_transform = input_transform
        self.hidden_size = int(backbone.config.hidden_size)
        self.num_layers = int(backbone.config.num_hidden_layers)
        if not 0 <= frozen_layers <= self.num_layers:
            raise CourseError(f"frozen_layers={frozen_layers} must be between 0 and "
                              f"{self.num_layers} (the backbone's layers)")
        self.frozen_layers = frozen_layers
        pooler = getattr(backbone, "pooler", None)
        if pooler is not None:
            pooler.requires_grad_(False)
        if frozen_layers:
            backbone.get_input_embeddings().requires_grad_(False)
            embeddings = getattr(backbone, "embeddings", None)
            if embeddings is not None:
                embeddings.requires_grad_(False)
            for layer in encoder_layers(backbone)[:frozen_layers]:
                layer.requires_grad_(False)

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None,
                hidden_states=None) -> torch.Tensor:
        if attention_mask is None:
            raise CourseError("attention_mask is required: without it padding is read as text")
        if hidden_states is not None:
            return self.top_layers(hidden_states, attention_mask)
        if self.input_transform is not None:
            embeddings = self.backbone.get_input_embeddings()(input_ids)
            out = self.backbone(inputs_embeds=self.input_transform(embeddings),
                                attention_mask=attention_mask, token_type_ids=token_type_ids)
        else:
            out = self.backbone(input_ids=input_ids, attention_mask=attention_mask,
                                token_type_ids=token_type_ids)
        return out.last_hidden_state

    def top_layers(self, states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Run the unfrozen layers on cached output of the frozen ones."""
        if not self.frozen_layers:
            raise CourseError("hidden_states were given but nothing is frozen (frozen_layers=0): "
                              "cached embeddings would silently stop the embeddings training")
        if self.input_transform is not None:
            raise CourseError("cached hidden states cannot sit below a trained input transform: "
                              "use frozen_layers without caching, or no input_transform")
        layers = encoder_layers(self.backbone)[self.frozen_layers:]
        return run_layers(layers, self.backbone.config, states, attention_mask)


def as_token_encoder(encoder: nn.Module) -> TokenEncoder:
    """``encoder`` as a :class:`TokenEncoder`; a new wrapper takes the backbone's mode, so
    helpers that switch to eval and back leave a backbone in eval mode in eval mode."""
    if isinstance(encoder, TokenEncoder):
        return encoder
    return TokenEncoder(encoder).train(encoder.training)


def first_device(module: nn.Module) -> torch.device:
    return next(module.parameters()).device
