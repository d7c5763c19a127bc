"""A ``BertForMaskedLM`` for any BERT backbone, including one shipped without the head.

BERT's masked-LM head is small: a *transform* (dense + GELU + LayerNorm, hidden x
hidden), then a *decoder* that scores every vocabulary entry. The decoder's weight
matrix is the input word-embedding matrix itself (*tied*), so only the transform and
one bias per vocabulary entry are new. A checkpoint without the head (the quick
backbone, a sentence-embedding model) therefore gets a head that starts from the right
word vectors and needs only a short phase of training before the encoder trains too.

The encoder keeps its pooler (the dense layer over ``[CLS]``) although masked-LM does
not use it: ``BertForSequenceClassification`` classifies the pooler's output, and a
model saved without it would start ``classify`` with a random pooler, so a comparison
"from the adapted backbone vs. from the original" would not compare like with like.
The pooler is frozen here (it gets no gradient from masked-LM).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .. import backbones, settings
from ..settings import CourseError

PSEUDO_COUNT = 0.05  # per vocabulary entry: small, or a small corpus's unseen tokens take
# most of the probability (30,522 entries against ~10,000 tokens of a bundled sample)


def build_masked_lm(name: str | None = None, *, seed: int | None = settings.DEFAULT_SEED):
    """``BertForMaskedLM`` from ``name`` (default: the profile's backbone).

    Uses the checkpoint's own masked-LM head when it has one (``bert-base-uncased``);
    otherwise creates one from ``seed`` (a forked generator: the caller's random streams
    are left as they were) with the decoder tied to the word embeddings.
    """
    from transformers import BertForMaskedLM

    resolved = backbones.resolve_model_name(name)
    encoder = backbones.load_model("encoder", resolved, seed=seed)  # BertModel + pooler
    if encoder.config.model_type != "bert":
        raise CourseError(f"{backbones.describe(resolved)} is a {encoder.config.model_type!r} "
                          "model; masked-LM pretraining here supports BERT checkpoints")
    with settings.seeded(seed):
        model = BertForMaskedLM(encoder.config)  # a fresh head (and a throwaway encoder)
    model.bert = encoder
    if backbones.has_mlm_head(resolved):
        trained = backbones.load_model("mlm", resolved, seed=None)
        model.cls.load_state_dict(trained.cls.state_dict())
    model.tie_weights()  # decoder.weight is the word-embedding matrix, decoder.bias the bias
    if encoder.pooler is not None:
        encoder.pooler.requires_grad_(False)
    return model


def start_bias_at_word_frequencies(model, examples: list[dict]) -> None:
    """Set a new head's output bias to the log-frequency of each token in ``examples``.

    A new head starts by scoring all 30,522 tokens alike (loss ln 30522 = 10.3). Adam
    moves a bias by about one learning rate per step, so learning that "the" and "."
    are common would take hundreds of steps. Starting the bias at the log-frequencies
    (plus a small pseudo-count) makes the head a word-frequency model from step one (what
    a model that ignores the context would guess), and training goes to the context at once.
    """
    bias = model.cls.predictions.bias
    counts = torch.full((bias.shape[0],), PSEUDO_COUNT)  # unseen tokens stay possible
    for example in examples:
        ids = torch.as_tensor(example["input_ids"])
        special = torch.as_tensor(example["special_tokens_mask"]).bool()
        counts += torch.bincount(ids[~special], minlength=bias.shape[0])[: bias.shape[0]]
    with torch.no_grad():
        bias.copy_((counts / counts.sum()).log())


def head_is_tied(model) -> bool:
    """True when the decoder scores tokens with the input word-embedding matrix."""
    decoder = model.cls.predictions.decoder
    return decoder.weight is model.bert.embeddings.word_embeddings.weight


def set_encoder_trainable(model, trainable: bool) -> None:
    """Freeze or unfreeze the encoder (embeddings and layers; the pooler stays frozen).

    Frozen, only the head's transform and bias train: the tied decoder weight *is*
    the embedding matrix, so it stays as the encoder has it.
    """
    model.bert.requires_grad_(trainable)
    if model.bert.pooler is not None:
        model.bert.pooler.requires_grad_(False)


def masked_lm_logits(model, input_ids, attention_mask=None, token_type_ids=None,
                     labels=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Scores for the masked positions only: ``(logits [n_masked, vocab], targets)``.

    ``BertForMaskedLM.forward`` scores every position against the 30,522-entry vocabulary;
    the loss needs only the ~15% that are masked. On the quick backbone that projection
    costs about half as much as the six encoder layers, so this is about a third faster.
    """
    hidden = model.bert(input_ids, attention_mask=attention_mask,
                        token_type_ids=token_type_ids).last_hidden_state
    where = labels != -100
    return model.cls(hidden[where]), labels[where]


def masked_lm_loss(model, input_ids, attention_mask=None, token_type_ids=None,
                   labels=None) -> torch.Tensor:
    """Mean cross-entropy over the masked tokens (what ``BertForMaskedLM`` returns)."""
    logits, targets = masked_lm_logits(model, input_ids, attention_mask, token_type_ids, labels)
    if targets.numel() == 0:  # nothing masked in this batch: no signal, no NaN
        return logits.sum() * 0.0
    return F.cross_entropy(logits.float(), targets)


def masked_lm_sums(model, batch: dict) -> dict[str, torch.Tensor]:
    """Per example: summed loss, correct guesses and count over its masked tokens.

    Summing (not averaging) per example lets any batching add up to the same totals,
    so perplexity = exp(total loss / total masked tokens) is exact.
    """
    labels = batch["labels"]
    logits, targets = masked_lm_logits(model, batch["input_ids"], batch.get("attention_mask"),
                                       batch.get("token_type_ids"), labels)
    rows = (labels != -100).nonzero()[:, 0]
    size = labels.shape[0]
    losses = F.cross_entropy(logits.float(), targets, reduction="none")
    zeros = torch.zeros(size, device=labels.device)
    return {"loss_sum": zeros.index_add(0, rows, losses),
            "correct": zeros.index_add(0, rows, (logits.argmax(-1) == targets).float()),
            "count": zeros.index_add(0, rows, torch.ones_like(losses))}


class MaskedLMTraining(torch.nn.Module):
    """What the course Trainer trains: the model plus masking on the fly.

    Training batches carry no ``labels``: each time a batch comes round, fresh tokens
    are masked (so every epoch hides different words, as in BERT's own pretraining).
    Batches that carry ``labels`` (a fixed masking) are used as they are. The extra
    inputs are named in ``forward`` so the Trainer passes them through.
    """

    def __init__(self, model, masker):
        super().__init__()
        self.model = model
        self.masker = masker

    def forward(self, input_ids, attention_mask=None, token_type_ids=None,
                special_tokens_mask=None, offset_mapping=None, labels=None):
        if labels is None:
            input_ids, labels = self.masker(input_ids, special_tokens_mask, offset_mapping)
        loss = masked_lm_loss(self.model, input_ids, attention_mask, token_type_ids, labels)
        return {"loss": loss}
