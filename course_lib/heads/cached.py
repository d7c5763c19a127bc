"""The output of frozen lower layers, computed once; the top layers trained on it.

When the embeddings and the bottom ``n`` layers of an encoder are frozen, their output
for a sentence never changes: not from epoch to epoch, not from trial to trial. So
compute it once (:func:`cache_hidden_states`) and train only what sits above on it
(:class:`TopLayers` for a sequence classifier's own top layers and head, or
:class:`~.classifier.PooledClassifier` / :class:`~course_lib.multitask.MultiTaskModel`
on a :class:`~.encoder.TokenEncoder` with ``frozen_layers=n``). A real, cheaper kind
of fine-tuning: the frozen part costs one forward pass per sentence instead of one per
epoch, and no backward pass at all.

The cache runs in eval mode (no dropout), as the frozen layers would at test time, so
training on the cache differs from training the whole model with those layers frozen
only in that dropout below the cut is off.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..settings import CourseError
from ..strategies.anatomy import base_model, encoder_layers
from ..training import batched_outputs, to_tensors
from .pooling import MeanPooling

INPUT_COLUMNS = ("input_ids", "attention_mask", "token_type_ids")


def run_layers(layers, config, hidden: torch.Tensor, attention_mask: torch.Tensor
               ) -> torch.Tensor:
    """Run a slice of an encoder's layers on ``hidden`` (``[batch, length, width]``).

    The mask is built as the backbone builds it for its own layers (its format depends
    on the attention implementation: eager, sdpa...), so padding is ignored exactly as
    in the whole model's forward.
    """
    if not len(layers):
        return hidden
    from transformers.masking_utils import create_bidirectional_mask

    mask = create_bidirectional_mask(config=config, inputs_embeds=hidden,
                                     attention_mask=attention_mask)
    for layer in layers:
        hidden = layer(hidden, attention_mask=mask)
    return hidden


def cache_hidden_states(model: nn.Module, dataset, layer: int, *, batch_size: int = 64
                        ) -> list[dict[str, torch.Tensor]]:
    """The dataset's examples (tensors) with ``hidden_states`` added: the output of the
    embeddings and the bottom ``layer`` encoder layers (``layer=0``: the embeddings
    alone), ``[length, width]`` per example, without padding.

    ``model``: a task model (``load_model("classification")``) or a bare encoder.
    Only the bottom part runs, in eval mode, through the course's one inference loop
    (:func:`course_lib.training.batched_outputs`: longest examples first, little
    padding). Every numeric column is kept (labels, ``input_ids`` for length grouping).
    Give the result to the Trainer; pass ``label_keys`` when the examples carry columns
    other than labels that the model does not take as inputs.
    """
    base = base_model(model)
    layers = encoder_layers(model)
    if not 0 <= layer <= len(layers):
        raise CourseError(f"layer={layer}: the model has {len(layers)} layers (0 = the "
                          "embeddings' output)")
    examples = to_tensors(dataset)
    if not examples or "input_ids" not in examples[0]:
        raise CourseError("cache_hidden_states needs tokenised examples with input_ids")

    def bottom(encoder, batch):
        hidden = encoder.embeddings(input_ids=batch["input_ids"],
                                    token_type_ids=batch.get("token_type_ids"))
        return {"hidden_states": run_layers(layers[:layer], encoder.config, hidden,
                                            batch["attention_mask"])}

    states = batched_outputs(base, examples, batch_size=batch_size,
                             pad_token_id=getattr(base.config, "pad_token_id", 0) or 0,
                             forward=bottom, keep=INPUT_COLUMNS,
                             sequence_outputs=("hidden_states",))["hidden_states"]
    return [{**example, "hidden_states": state} for example, state in zip(examples, states)]


class TopLayers(nn.Module):
    """A sequence classifier from layer ``from_layer`` up, fed with cached hidden states.

    The layers above ``from_layer``, then the head: ``pooling="pooler"`` is the model's
    own (BERT's ``[CLS]`` pooler, dropout, classifier), so in eval mode the logits
    equal the whole model's; ``pooling="mean"`` averages the real tokens' states
    instead of the pooler (better for sentence-embedding backbones such as the quick
    one, whose ``[CLS]`` was never trained as a summary).

    The modules are *shared* with ``model``: training this trains ``model``'s own top
    layers and head (give it a freshly loaded model per run when runs must not share).
    ``input_ids`` and ``token_type_ids`` (kept in the cached examples) are accepted and
    ignored: the cache has already used them, and the Trainer reads ``input_ids`` only
    to group examples of similar length.
    """

    def __init__(self, model: nn.Module, from_layer: int, *, pooling: str = "pooler"):
        super().__init__()
        layers = encoder_layers(model)
        if not 0 <= from_layer <= len(layers):
            raise CourseError(f"from_layer={from_layer} must be between 0 and {len(layers)}")
        if pooling not in ("pooler", "mean"):
            raise CourseError(f"pooling={pooling!r}: choose 'pooler' (the model's own) or "
                              "'mean'")
        base = base_model(model)
        classifier = getattr(model, "classifier", None)
        if not isinstance(classifier, nn.Linear):
            raise CourseError(f"{type(model).__name__}: TopLayers needs a BERT-style sequence "
                              "classifier (a linear .classifier on a pooled vector)")
        if pooling == "pooler" and getattr(base, "pooler", None) is None:
            raise CourseError("this model has no pooler: use pooling='mean'")
        self.config = base.config
        self.layers = nn.ModuleList(list(layers)[from_layer:])
        self.pooler = base.pooler if pooling == "pooler" else None
        self.mean = MeanPooling() if pooling == "mean" else None
        dropout = getattr(model, "dropout", None)
        self.dropout = dropout if dropout is not None else nn.Identity()
        self.classifier = classifier

    def forward(self, hidden_states, attention_mask, labels=None, input_ids=None,
                token_type_ids=None):
        hidden = run_layers(self.layers, self.config, hidden_states, attention_mask)
        pooled = (self.pooler(hidden) if self.pooler is not None
                  else self.mean(hidden, attention_mask))
        logits = self.classifier(self.dropout(pooled))
        out = {"logits": logits}
        if labels is not None:
            out["loss"] = F.cross_entropy(logits.float(), labels)
        return out
