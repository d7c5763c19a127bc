"""Custom heads on a BERT encoder: pooling, classifiers, task-specific input
embeddings, domain tokens, and training the top on cached frozen layers.

A sequence classifier is three parts that can be swapped independently::

    backbone (one state per token) -> pooling (one vector per text) -> head (logits)

:class:`PooledClassifier` joins any backbone, any pooling and a head, and returns
``{"loss", "logits"}``, so :class:`course_lib.training.Trainer` trains it like any
Hugging Face model. Every pooling looks at real tokens only (``attention_mask == 1``).

Two ways to adapt the input side to a domain:

- :class:`TaskEmbeddingTransform`: a learned map applied to the word-piece
  embeddings and fed through ``inputs_embeds``, started at the identity;
- :func:`add_domain_tokens`: new vocabulary entries for domain words that the
  WordPiece vocabulary splits into many pieces, each new row started at the mean
  of the word's old pieces.

For CPU budgets, the frozen bottom of an encoder runs once:
:func:`cache_hidden_states` computes its output, and :class:`TopLayers` (a sequence
classifier's own top layers and head) or a :class:`TokenEncoder` with
``frozen_layers`` (under :class:`PooledClassifier` or a multi-task model) trains on it.

Modules: ``pooling``, ``inputs`` (task-specific input embeddings), ``encoder``
(:class:`TokenEncoder`), ``cached`` (the frozen-layer cache and :class:`TopLayers`),
``classifier``, ``domain_tokens``.
"""

from .cached import TopLayers, cache_hidden_states, run_layers
from .classifier import ClassificationHead, PooledClassifier, sentence_embeddings, word_vector
from .domain_tokens import (
    DOMAIN_INITS,
    WORD_PATTERN,
    DomainTokens,
    add_domain_tokens,
    pieces_per_word,
    split_words,
)
from .encoder import TokenEncoder, as_token_encoder
from .inputs import TaskEmbeddingTransform
from .pooling import (
    POOLINGS,
    AttentionPooling,
    CLSPooling,
    MaxPooling,
    MeanPooling,
    make_pooling,
)

__all__ = [
    "DOMAIN_INITS", "POOLINGS", "WORD_PATTERN", "AttentionPooling", "CLSPooling",
    "ClassificationHead", "DomainTokens", "MaxPooling", "MeanPooling", "PooledClassifier",
    "TaskEmbeddingTransform", "TokenEncoder", "TopLayers", "add_domain_tokens",
    "as_token_encoder", "cache_hidden_states", "make_pooling", "pieces_per_word",
    "run_layers", "sentence_embeddings", "split_words", "word_vector",
]
