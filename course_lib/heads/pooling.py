"""Pooling: one vector per text from one state per token, looking at real tokens only.

Every pooling here reads positions with ``attention_mask == 1`` only, so the same
sentence padded to 10 or to 100 positions gives the same vector. The popular
tutorial version of attention pooling (a softmax over *all* positions) lets padding
change the prediction; notebook 07 shows it with numbers.
"""

from __future__ import annotations

import torch
from torch import nn

from ..settings import CourseError


class CLSPooling(nn.Module):
    """The state of the first token (``[CLS]``).

    BERT trained that position for next-sentence prediction; sentence-embedding
    models such as the quick backbone (MiniLM, trained with mean pooling) never
    trained it as a summary, so without fine-tuning it is a weak one.
    """

    def forward(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return hidden[:, 0]


class MeanPooling(nn.Module):
    """Average of the real tokens' states (padding excluded from sum *and* count)."""

    def forward(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)


class MaxPooling(nn.Module):
    """Per-dimension maximum over the real tokens.

    Padding positions are not zeros: the encoder computes a state for them too,
    so they are filled with the lowest value before the maximum is taken.
    """

    def forward(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        lowest = torch.finfo(hidden.dtype).min
        filled = hidden.masked_fill(attention_mask.unsqueeze(-1) == 0, lowest)
        return filled.max(dim=1).values


class AttentionPooling(nn.Module):
    """Adaptive pooling: a learned score per token, softmax over the real tokens.

    ``weights = softmax(score(h_i))`` over positions with ``attention_mask == 1``
    (padding gets weight exactly 0), then ``sum_i weights_i * h_i``. One score per
    token, not one per dimension: the weights are a distribution over the
    sentence's tokens that can be drawn and read. At initialisation the scores
    are small, so the weights are close to uniform: it starts near mean pooling.
    """

    def __init__(self, hidden_size: int):
        super().__init__()
        self.score = nn.Linear(hidden_size, 1)

    def weights(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        scores = self.score(hidden).squeeze(-1).float()
        scores = scores.masked_fill(attention_mask == 0, torch.finfo(scores.dtype).min)
        return torch.softmax(scores, dim=-1)

    def forward(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        weights = self.weights(hidden, attention_mask).to(hidden.dtype)
        return (weights.unsqueeze(-1) * hidden).sum(dim=1)


POOLINGS = {"cls": CLSPooling, "mean": MeanPooling, "max": MaxPooling,
            "attention": AttentionPooling}


def make_pooling(name: str | nn.Module, hidden_size: int) -> nn.Module:
    """A pooling module by name (``cls``, ``mean``, ``max``, ``attention``), or ``name``
    itself when it is already a module."""
    if isinstance(name, nn.Module):
        return name
    if name not in POOLINGS:
        raise CourseError(f"pooling={name!r} is not one of {', '.join(POOLINGS)}")
    return AttentionPooling(hidden_size) if name == "attention" else POOLINGS[name]()
