"""Task-specific input embeddings: a learned map on the word-piece embeddings.

It is fed to the encoder through ``inputs_embeds`` (see :class:`~.encoder.TokenEncoder`);
position and segment embeddings are added inside the backbone as usual. It does
*not* change the tokenisation: "ebitda" is still ``e ##bit ##da`` (for that, see
:mod:`.domain_tokens`).
"""

from __future__ import annotations

import torch
from torch import nn


class TaskEmbeddingTransform(nn.Module):
    """A learned map on the word-piece embeddings: ``e -> W e + b``.

    With ``identity_init=True`` (the default) ``W = I`` and ``b = 0``: before
    training, the model's outputs equal the plain backbone's, and training moves
    away from the pretrained model only as far as the task asks. The popular
    version keeps PyTorch's random initialisation (``identity_init=False``) and
    feeds the encoder vectors it has never seen.
    """

    def __init__(self, hidden_size: int, identity_init: bool = True):
        super().__init__()
        self.linear = nn.Linear(hidden_size, hidden_size)
        if identity_init:
            nn.init.eye_(self.linear.weight)
            nn.init.zeros_(self.linear.bias)

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        return self.linear(embeddings)
