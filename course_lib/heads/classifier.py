"""A sequence classifier from swappable parts, and vectors read off an encoder.

    backbone (one state per token) -> pooling (one vector per text) -> head (logits)

:class:`PooledClassifier` joins any backbone, any pooling and a head, and returns
``{"loss", "logits"}`` (a loss when ``labels`` are given), so
:class:`course_lib.training.Trainer` trains it like any Hugging Face model.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .. import settings
from ..settings import CourseError
from ..training import batched_outputs
from .encoder import as_token_encoder, first_device
from .pooling import AttentionPooling, make_pooling


class ClassificationHead(nn.Module):
    """Dropout then one linear layer: pooled vector -> one logit per label."""

    def __init__(self, hidden_size: int, num_labels: int, dropout: float = 0.1):
        super().__init__()
        if num_labels < 2:
            raise CourseError(f"num_labels={num_labels}: a classifier needs at least 2 labels")
        self.dropout = nn.Dropout(dropout)
        self.linear = nn.Linear(hidden_size, num_labels)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.linear(self.dropout(pooled))


class PooledClassifier(nn.Module):
    """backbone -> pooling -> head, returning ``{"loss", "logits"}`` for the Trainer.

    ``encoder``: a Hugging Face encoder (``load_model("encoder")``) or a
    :class:`~.encoder.TokenEncoder`. The pooling and the head are new weights;
    ``seed`` draws them without touching the global random streams (``None``: from
    the current global stream).
    """

    def __init__(self, encoder: nn.Module, pooling: str | nn.Module = "mean", *,
                 labels: Sequence[str] | None = None, num_labels: int | None = None,
                 dropout: float = 0.1, seed: int | None = None):
        super().__init__()
        if labels is None and num_labels is None:
            raise CourseError("PooledClassifier needs labels=[names] or num_labels=N")
        self.labels = list(labels) if labels is not None else [str(i) for i in range(num_labels)]
        self.id2label = dict(enumerate(self.labels))
        self.encoder = as_token_encoder(encoder)
        hidden = self.encoder.hidden_size
        with settings.seeded(seed):
            self.pooling = make_pooling(pooling, hidden)
            self.head = ClassificationHead(hidden, len(self.labels), dropout)

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, labels=None,
                hidden_states=None) -> dict[str, torch.Tensor]:
        hidden = self.encoder(input_ids, attention_mask, token_type_ids,
                              hidden_states=hidden_states)
        logits = self.head(self.pooling(hidden, attention_mask))
        out = {"logits": logits}
        if labels is not None:
            out["loss"] = F.cross_entropy(logits.float(), labels)
        return out

    @torch.inference_mode()
    def pooling_weights(self, tokenizer, text: str) -> tuple[list[str], list[float]]:
        """Tokens of ``text`` and the attention pooling's weight on each (sums to 1)."""
        if not isinstance(self.pooling, AttentionPooling):
            raise CourseError(f"pooling_weights needs attention pooling, not "
                              f"{type(self.pooling).__name__}")
        was_training = self.training
        self.eval()
        batch = tokenizer(text, return_tensors="pt").to(first_device(self))
        hidden = self.encoder(batch["input_ids"], batch["attention_mask"],
                              batch.get("token_type_ids"))
        weights = self.pooling.weights(hidden, batch["attention_mask"])[0]
        self.train(was_training)
        tokens = tokenizer.convert_ids_to_tokens(batch["input_ids"][0].tolist())
        return tokens, weights.float().cpu().tolist()


def sentence_embeddings(encoder: nn.Module, tokenizer, texts: Sequence[str], *,
                        pooling: str = "mean", batch_size: int = 64) -> torch.Tensor:
    """One vector per text from an encoder (eval mode, masked pooling): ``[n, hidden]``.

    Runs through the course's one inference loop
    (:func:`course_lib.training.batched_outputs`), so similar lengths share a batch.
    """
    if not len(texts):
        raise CourseError("sentence_embeddings needs at least one text")
    token_encoder = as_token_encoder(encoder)
    pool = make_pooling(pooling, token_encoder.hidden_size).to(first_device(token_encoder))
    encoded = tokenizer(list(texts), truncation=True)
    rows = [{k: encoded[k][i] for k in encoded.keys()} for i in range(len(texts))]

    def embed(model, batch):
        hidden = model(batch["input_ids"], batch["attention_mask"], batch.get("token_type_ids"))
        return {"embedding": pool(hidden, batch["attention_mask"])}

    vectors = batched_outputs(token_encoder, rows, batch_size=batch_size,
                              pad_token_id=tokenizer.pad_token_id or 0, forward=embed)
    return torch.stack(vectors["embedding"])


@torch.inference_mode()
def word_vector(encoder: nn.Module, tokenizer, text: str, word: str) -> torch.Tensor:
    """The contextual vector of ``word`` in ``text``: the mean of the output states of
    the tokens that cover its first whole-word occurrence (one token or several
    pieces, whatever this tokenizer makes of it)."""
    match = re.search(rf"(?<![^\W_]){re.escape(word)}(?![^\W_])", text, flags=re.IGNORECASE)
    if match is None:
        raise CourseError(f"word {word!r} does not occur in the text {text[:60]!r}")
    token_encoder = as_token_encoder(encoder)
    was_training = token_encoder.training
    token_encoder.eval()
    batch = tokenizer(text, return_offsets_mapping=True, truncation=True, return_tensors="pt")
    offsets = batch.pop("offset_mapping")[0].tolist()
    batch = batch.to(first_device(token_encoder))
    hidden = token_encoder(batch["input_ids"], batch["attention_mask"],
                           batch.get("token_type_ids"))[0]
    token_encoder.train(was_training)
    covered = [i for i, (start, end) in enumerate(offsets)
               if end > start and start < match.end() and end > match.start()]
    if not covered:
        raise CourseError(f"word {word!r} was truncated away in {text[:60]!r}")
    return hidden[covered].mean(dim=0).float().cpu()
