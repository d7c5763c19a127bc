"""Custom heads on a BERT encoder: pooling, classifiers, task-specific input
embeddings and domain tokens.

A sequence classifier is three parts that can be swapped independently::

    backbone (one state per token) -> pooling (one vector per text) -> head (logits)

:class:`PooledClassifier` joins any backbone, any pooling and a head, and returns
``{"loss", "logits"}`` (a loss when ``labels`` are given), so
:class:`course_lib.training.Trainer` trains it like any Hugging Face model.

Padding: every pooling here looks at real tokens only (``attention_mask == 1``),
so the same sentence padded to 10 or to 100 positions gives the same vector. The
popular tutorial version of attention pooling (a softmax over *all* positions)
lets padding change the prediction; notebook 06 shows it with numbers.

Two ways to adapt the input side to a domain:

- :class:`TaskEmbeddingTransform`: a learned map applied to the word-piece
  embeddings and fed through ``inputs_embeds``. It starts at the identity, so the
  model starts exactly where the pretrained one was. It does *not* change the
  tokenisation: "ebitda" is still ``e ##bit ##da``.
- :func:`add_domain_tokens`: new vocabulary entries for domain words that the
  WordPiece vocabulary splits into many pieces, with each new embedding row
  started at the mean of the word's old pieces (not at random), so the model
  reads the new token roughly as it read the pieces.

For CPU budgets, :class:`TokenEncoder` can freeze the bottom layers and
:func:`cache_token_states` computes their output once; training then runs only
the top layers (or, with every layer frozen, only the pooling and the head).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from . import settings
from .batching import PadCollator, to_tensors
from .settings import CourseError

# ------------------------------------------------------------------ pooling


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


# --------------------------------------------------- task-specific embeddings


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


# ----------------------------------------------------------------- encoder


class TokenEncoder(nn.Module):
    """A Hugging Face encoder as a function ``tokens -> one state per token``.

    - ``input_transform``: a module applied to the word embeddings, which are then
      fed through ``inputs_embeds`` (position and segment embeddings are added
      inside the backbone as usual).
    - ``frozen_layers=k``: the embeddings and the bottom ``k`` transformer layers
      get ``requires_grad=False``. Their output never changes, so it can be
      computed once (:func:`cache_token_states`) and passed back as
      ``token_states``; the forward then runs only the top layers. With every
      layer frozen, ``token_states`` are the final states and training touches
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
            for layer in self._layers()[:frozen_layers]:
                layer.requires_grad_(False)

    def _layers(self) -> nn.ModuleList:
        layers = getattr(getattr(self.backbone, "encoder", None), "layer", None)
        if layers is None:
            raise CourseError(f"{type(self.backbone).__name__} has no encoder.layer list: "
                              "frozen_layers needs a BERT-family encoder")
        return layers

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None,
                token_states=None) -> torch.Tensor:
        if attention_mask is None:
            raise CourseError("attention_mask is required: without it padding is read as text")
        if token_states is not None:
            return self.top_layers(token_states, attention_mask)
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
        layers = list(self._layers())[self.frozen_layers:]
        if not layers:
            return states
        from transformers.masking_utils import create_bidirectional_mask

        # the same mask the backbone builds for its own layers (format depends on
        # the attention implementation: eager, sdpa...)
        mask = create_bidirectional_mask(config=self.backbone.config, inputs_embeds=states,
                                         attention_mask=attention_mask)
        for layer in layers:
            states = layer(states, mask)
        return states

    @torch.inference_mode()
    def frozen_states(self, input_ids, attention_mask, token_type_ids=None) -> torch.Tensor:
        """Output of the frozen part (embeddings + bottom ``frozen_layers`` layers)."""
        if self.input_transform is not None:
            raise CourseError("token states cannot be cached below a trained input transform: "
                              "use frozen_layers without caching, or no input_transform")
        was_training = self.backbone.training
        self.backbone.eval()  # cached features: no dropout
        out = self.backbone(input_ids=input_ids, attention_mask=attention_mask,
                            token_type_ids=token_type_ids, output_hidden_states=True)
        self.backbone.train(was_training)
        return out.hidden_states[self.frozen_layers]


def as_token_encoder(encoder: nn.Module) -> TokenEncoder:
    return encoder if isinstance(encoder, TokenEncoder) else TokenEncoder(encoder)


def _first_device(module: nn.Module) -> torch.device:
    return next(module.parameters()).device


def cache_token_states(encoder: TokenEncoder, dataset, *, batch_size: int = 64,
                       pad_token_id: int = 0) -> list[dict[str, torch.Tensor]]:
    """The dataset's examples (tensors) with a ``token_states`` field added: the
    frozen part's output for each example, cut to its own length.

    Computed once, in eval mode, longest examples first (little padding). Give
    the result to the Trainer as ``train_dataset``/``eval_dataset``; pass
    ``label_keys=("labels",)`` so the cached states are not collected as labels.
    """
    if not isinstance(encoder, TokenEncoder):
        raise CourseError("cache_token_states needs a TokenEncoder (with frozen_layers set)")
    examples = [dict(ex) for ex in to_tensors(dataset)]
    if not examples or "input_ids" not in examples[0]:
        raise CourseError("cache_token_states needs tokenised examples with input_ids")
    collate = PadCollator(pad_token_id)
    inputs = ("input_ids", "attention_mask", "token_type_ids")
    order = sorted(range(len(examples)), key=lambda i: -len(examples[i]["input_ids"]))
    device = _first_device(encoder)
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        batch = collate([{k: examples[i][k] for k in inputs if k in examples[i]} for i in idx])
        batch = {k: v.to(device) for k, v in batch.items()}
        states = encoder.frozen_states(**batch).float().cpu()
        for row, i in enumerate(idx):
            length = len(examples[i]["input_ids"])
            examples[i]["token_states"] = states[row, :length].clone()
    return examples


# --------------------------------------------------------------- classifier


class PooledClassifier(nn.Module):
    """backbone -> pooling -> head, returning ``{"loss", "logits"}`` for the Trainer.

    ``encoder``: a Hugging Face encoder (``load_model("encoder")``) or a
    :class:`TokenEncoder`. The pooling and the head are new weights: they are
    created right after ``settings.seed_everything(seed)``.
    """

    def __init__(self, encoder: nn.Module, pooling: str | nn.Module = "mean", *,
                 labels: Sequence[str] | None = None, num_labels: int | None = None,
                 dropout: float = 0.1, seed: int | None = settings.DEFAULT_SEED):
        super().__init__()
        if labels is None and num_labels is None:
            raise CourseError("PooledClassifier needs labels=[names] or num_labels=N")
        self.labels = list(labels) if labels is not None else [str(i) for i in range(num_labels)]
        self.id2label = dict(enumerate(self.labels))
        self.encoder = as_token_encoder(encoder)
        hidden = self.encoder.hidden_size
        if seed is not None:
            settings.seed_everything(seed)  # the pooling and head weights come from this seed
        self.pooling = make_pooling(pooling, hidden)
        self.head = ClassificationHead(hidden, len(self.labels), dropout)

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, labels=None,
                token_states=None) -> dict[str, torch.Tensor]:
        hidden = self.encoder(input_ids, attention_mask, token_type_ids,
                              token_states=token_states)
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
        batch = tokenizer(text, return_tensors="pt").to(_first_device(self))
        hidden = self.encoder(batch["input_ids"], batch["attention_mask"],
                              batch.get("token_type_ids"))
        weights = self.pooling.weights(hidden, batch["attention_mask"])[0]
        self.train(was_training)
        tokens = tokenizer.convert_ids_to_tokens(batch["input_ids"][0].tolist())
        return tokens, weights.float().cpu().tolist()


@torch.inference_mode()
def sentence_embeddings(encoder: nn.Module, tokenizer, texts: Sequence[str], *,
                        pooling: str = "mean", batch_size: int = 64) -> torch.Tensor:
    """One vector per text from an encoder (eval mode, masked pooling): ``[n, hidden]``."""
    token_encoder = as_token_encoder(encoder)
    pool = make_pooling(pooling, token_encoder.hidden_size)
    was_training = token_encoder.training
    token_encoder.eval()
    device = _first_device(token_encoder)
    parts = []
    for start in range(0, len(texts), batch_size):
        batch = tokenizer(list(texts[start : start + batch_size]), padding=True,
                          truncation=True, return_tensors="pt").to(device)
        hidden = token_encoder(batch["input_ids"], batch["attention_mask"],
                               batch.get("token_type_ids"))
        parts.append(pool(hidden, batch["attention_mask"]).float().cpu())
    token_encoder.train(was_training)
    return torch.cat(parts)


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
    batch = batch.to(_first_device(token_encoder))
    hidden = token_encoder(batch["input_ids"], batch["attention_mask"],
                           batch.get("token_type_ids"))[0]
    token_encoder.train(was_training)
    covered = [i for i, (start, end) in enumerate(offsets)
               if end > start and start < match.end() and end > match.start()]
    if not covered:
        raise CourseError(f"word {word!r} was truncated away in {text[:60]!r}")
    return hidden[covered].mean(dim=0).float().cpu()


# ------------------------------------------------------------ domain tokens

WORD_PATTERN = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)?")


def _lowercases(tokenizer) -> bool:
    if hasattr(tokenizer, "do_lower_case"):
        return bool(tokenizer.do_lower_case)
    return tokenizer.tokenize("A") == tokenizer.tokenize("a")


def split_words(texts: Iterable[str], tokenizer, *, min_pieces: int = 3,
                min_count: int = 1) -> list[tuple[str, int, list[str]]]:
    """Words that the tokenizer cuts into ``min_pieces`` or more word pieces.

    Returns ``(word, count, pieces)``, most frequent first. Words are runs of
    letters (so "debt-to-ebitda" counts "ebitda"), lower-cased for an uncased
    tokenizer.
    """
    lower = _lowercases(tokenizer)
    counts: Counter[str] = Counter()
    for text in texts:
        for word in WORD_PATTERN.findall(text):
            counts[word.lower() if lower else word] += 1
    found = []
    for word, count in counts.items():
        if count < min_count:
            continue
        pieces = tokenizer.tokenize(word)
        if len(pieces) >= min_pieces:
            found.append((word, count, pieces))
    return sorted(found, key=lambda item: (-item[1], -len(item[2]), item[0]))


@dataclass
class DomainTokens:
    """What :func:`add_domain_tokens` did: each new word, its old pieces and new id."""

    pieces: dict[str, list[str]] = field(default_factory=dict)
    token_ids: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    init: str = "pieces"

    @property
    def words(self) -> list[str]:
        return list(self.token_ids)

    def table(self):
        import pandas as pd

        return pd.DataFrame([{"word": w, "old pieces": " ".join(self.pieces[w]),
                              "n old pieces": len(self.pieces[w]), "new id": self.token_ids[w]}
                             for w in self.token_ids])


DOMAIN_INITS = ("pieces", "resize_default")


def add_domain_tokens(tokenizer, model: nn.Module, words: Iterable[str], *,
                      init: str = "pieces", seed: int = settings.DEFAULT_SEED) -> DomainTokens:
    """Add ``words`` to the tokenizer as whole tokens and give each an embedding row.

    ``model``: the Hugging Face backbone (anything with ``resize_token_embeddings``).
    ``init="pieces"``: each new row is the mean of the word's old word-piece rows,
    so the model first reads the new token roughly as it read the pieces and
    training starts near the pretrained model. ``init="resize_default"`` keeps
    what ``resize_token_embeddings`` does by default (a random draw around the
    mean of the *whole* vocabulary: the same generic vector for every word).

    Tokenise the data *after* this call: text tokenised before still holds the
    old pieces. Words already in the vocabulary as one token are skipped (listed
    in ``skipped``). New tokens match whole words only ("ebitdas" is untouched).
    """
    from tokenizers import AddedToken

    if init not in DOMAIN_INITS:
        raise CourseError(f"init={init!r} is not one of {', '.join(DOMAIN_INITS)}")
    if not hasattr(model, "resize_token_embeddings"):
        raise CourseError(f"{type(model).__name__} has no resize_token_embeddings: pass the "
                          "Hugging Face backbone (load_model('encoder')), before wrapping it")
    lower = _lowercases(tokenizer)
    report = DomainTokens(init=init)
    old_ids: dict[str, list[int]] = {}
    for raw in words:
        word = raw.strip().lower() if lower else raw.strip()
        if not word or any(ch.isspace() for ch in word):
            raise CourseError(f"domain word {raw!r} is empty or contains spaces: add one word "
                              "per entry")
        if word in old_ids or word in report.skipped:
            continue
        ids = tokenizer(word, add_special_tokens=False)["input_ids"]
        if len(ids) == 1:
            report.skipped[word] = "already one token"
            continue
        old_ids[word] = ids
        report.pieces[word] = tokenizer.convert_ids_to_tokens(ids)
    if not old_ids:
        return report
    tokenizer.add_tokens([AddedToken(w, single_word=True, normalized=True) for w in old_ids])
    settings.seed_everything(seed)  # resize draws the new rows at random first
    model.resize_token_embeddings(len(tokenizer), mean_resizing=init == "resize_default")
    weight = model.get_input_embeddings().weight
    with torch.no_grad():
        for word, ids in old_ids.items():
            new_id = tokenizer.convert_tokens_to_ids(word)
            report.token_ids[word] = int(new_id)
            if init == "pieces":
                weight[new_id] = weight[ids].mean(dim=0)
    return report


def pieces_per_word(tokenizer, words: Iterable[str]) -> dict[str, int]:
    """How many tokens the tokenizer uses for each word (1 = a whole token)."""
    return {w: len(tokenizer(w, add_special_tokens=False)["input_ids"]) for w in words}
