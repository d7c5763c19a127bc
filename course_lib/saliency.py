"""Which tokens drove a prediction: gradient x input saliency.

For a predicted class c, the gradient of its logit with respect to a token's
input embedding says how fast the logit changes when that embedding moves;
multiplied by the embedding itself (and summed over the hidden dimension) it
is a first-order estimate of the token's contribution, positive when the token
pushes towards c and negative when it pushes away (Shrikumar et al., 2017;
Denil et al., 2014). It costs one forward and one backward pass.

It is an *explanation of this model*, not of the language: a token can score
high because of a shortcut the model learnt. Check a saliency map by changing
the text (:func:`compare_edit`) and watching whether the prediction moves.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .settings import CourseError


@dataclass
class Saliency:
    """Tokens of one text with their scores, and what the model predicted."""

    text: str
    tokens: list[str]
    scores: np.ndarray  # one per token, special tokens included
    label: str
    probability: float
    probabilities: dict[str, float]

    def top(self, k: int = 5, skip_special: bool = True) -> list[tuple[str, float]]:
        """The ``k`` tokens that pushed hardest towards the predicted class."""
        pairs = [(t, float(s)) for t, s in zip(self.tokens, self.scores)
                 if not (skip_special and t in ("[CLS]", "[SEP]", "[PAD]"))]
        return sorted(pairs, key=lambda p: -p[1])[:k]

    def words(self) -> list[tuple[str, float]]:
        """Word pieces merged back into words (``##`` pieces join the word before), scores summed."""
        merged: list[tuple[str, float]] = []
        for token, score in zip(self.tokens, self.scores):
            if token.startswith("##") and merged:
                word, total = merged[-1]
                merged[-1] = (word + token[2:], total + float(score))
            else:
                merged.append((token, float(score)))
        return merged


def _label_name(model, index: int) -> str:
    id2label = getattr(getattr(model, "config", None), "id2label", None) or {}
    return str(id2label.get(index, id2label.get(str(index), index)))


def gradient_x_input(model, tokenizer, text: str, target: int | str | None = None,
                     max_length: int = 128) -> Saliency:
    """Gradient x input saliency of ``text`` for class ``target`` (default: the predicted one).

    Works with any ``AutoModelForSequenceClassification`` whose forward accepts
    ``inputs_embeds``. The model runs in eval mode (no dropout), and its
    training mode and gradients are left as they were.
    """
    embedding = model.get_input_embeddings()
    device = embedding.weight.device
    enc = tokenizer(text, truncation=True, max_length=max_length, return_tensors="pt")
    enc = {k: v.to(device) for k, v in enc.items()}
    was_training = model.training
    model.eval()
    try:
        embeds = embedding(enc["input_ids"]).detach().requires_grad_(True)
        inputs = {k: v for k, v in enc.items() if k != "input_ids"}
        logits = model(inputs_embeds=embeds, **inputs).logits[0]
        probs = torch.softmax(logits.detach().float(), -1).cpu().numpy()
        if target is None:
            index = int(probs.argmax())
        elif isinstance(target, str):
            label2id = getattr(model.config, "label2id", {}) or {}
            if target not in label2id:
                raise CourseError(f"target {target!r} is not one of the model's labels "
                                  f"{', '.join(label2id)}")
            index = int(label2id[target])
        else:
            index = int(target)
        if not 0 <= index < len(probs):
            raise CourseError(f"target class {index} is out of range for {len(probs)} classes")
        (grad,) = torch.autograd.grad(logits[index], embeds)
    finally:
        model.train(was_training)
    scores = (grad * embeds.detach())[0].sum(-1).float().cpu().numpy()
    tokens = tokenizer.convert_ids_to_tokens(enc["input_ids"][0].tolist())
    return Saliency(text=text, tokens=tokens, scores=scores, label=_label_name(model, index),
                    probability=float(probs[index]),
                    probabilities={_label_name(model, i): float(p) for i, p in enumerate(probs)})


def predict_texts(model, tokenizer, texts: list[str], max_length: int = 128,
                  batch_size: int = 64) -> np.ndarray:
    """Class probabilities for a few raw texts (the course's batched runner: eval mode,
    length-sorted batches each padded to its own longest text)."""
    enc = tokenizer(list(texts), truncation=True, max_length=max_length)
    rows = [{k: enc[k][i] for k in enc.keys()} for i in range(len(texts))]
    return _probabilities(model, rows, tokenizer.pad_token_id or 0, batch_size)


def _probabilities(model, rows: list[dict], pad_id: int, batch_size: int = 64) -> np.ndarray:
    """Softmax of the logits of tokenised ``rows``, in their order."""
    from .training import batched_outputs

    if not rows:
        return np.zeros((0, model.config.num_labels))
    logits = batched_outputs(model, rows, batch_size=batch_size, pad_token_id=pad_id,
                             keep=tuple(rows[0]))["logits"]
    return torch.softmax(torch.stack(logits).float(), -1).numpy()


def word_spans(tokens: list[str]) -> list[list[int]]:
    """Token positions of each word: a word and its ``##`` pieces; special tokens excluded."""
    spans: list[list[int]] = []
    for i, token in enumerate(tokens):
        if token in ("[CLS]", "[SEP]", "[PAD]"):
            continue
        if token.startswith("##") and spans and spans[-1][-1] == i - 1:
            spans[-1].append(i)
        else:
            spans.append([i])
    return spans


def _predict_ids(model, id_lists: list[list[int]], pad_id: int) -> np.ndarray:
    return _probabilities(model, [{"input_ids": ids, "attention_mask": [1] * len(ids)}
                                  for ids in id_lists], pad_id)


def deletion_check(model, tokenizer, texts: list[str], max_length: int = 128) -> dict:
    """Does saliency point at words that matter? Delete one word and re-predict.

    For every text, the word with the highest saliency for the predicted class is
    deleted (all its pieces); as the baseline, every word is deleted in turn, which gives
    the expected effect of deleting a random word exactly instead of one lucky or unlucky
    draw. A faithful map's deletions lower the predicted class's probability more, and
    change the prediction more often, than random ones. Returns, for both kinds of
    deletion, the mean drop of that probability and the share of changed predictions, and
    ``top_word_beats_average``: the share of texts where the top word's drop exceeds the
    average word's.
    """
    was_training = model.training
    model.eval()
    originals, top_deleted, every_deleted, owners = [], [], [], []
    try:
        for text in texts:
            s = gradient_x_input(model, tokenizer, text, max_length=max_length)
            ids = tokenizer(text, truncation=True, max_length=max_length)["input_ids"]
            spans = word_spans(s.tokens)
            if len(spans) < 2:
                continue
            top = max(spans, key=lambda span: float(s.scores[span].sum()))
            originals.append(ids)
            top_deleted.append([t for i, t in enumerate(ids) if i not in top])
            for span in spans:
                every_deleted.append([t for i, t in enumerate(ids) if i not in span])
                owners.append(len(originals) - 1)
        pad = tokenizer.pad_token_id or 0
        before = _predict_ids(model, originals, pad)
        after_top = _predict_ids(model, top_deleted, pad)
        after_every = _predict_ids(model, every_deleted, pad)
    finally:
        model.train(was_training)
    predicted = before.argmax(1)
    rows, owners = np.arange(len(predicted)), np.asarray(owners)
    top_drops = before[rows, predicted] - after_top[rows, predicted]
    every_drops = before[owners, predicted[owners]] - after_every[np.arange(len(owners)),
                                                                   predicted[owners]]
    every_changed = after_every.argmax(1) != predicted[owners]
    words = np.bincount(owners, minlength=len(rows))  # average over each text's words first
    average_drops = np.bincount(owners, every_drops, minlength=len(rows)) / words
    average_changes = np.bincount(owners, every_changed, minlength=len(rows)) / words
    return {"texts": len(originals), "top_word_prob_drop": float(top_drops.mean()),
            "random_word_prob_drop": float(average_drops.mean()),
            "top_word_changes": float((after_top.argmax(1) != predicted).mean()),
            "random_word_changes": float(average_changes.mean()),
            "top_word_beats_average": float((top_drops > average_drops).mean())}


def compare_edit(model, tokenizer, original: str, edited: str) -> dict:
    """Predictions for a text and an edited copy (a swapped number, a removed word).

    The honest test of an explanation: if the tokens that saliency points at
    matter, changing them changes the prediction.
    """
    probs = predict_texts(model, tokenizer, [original, edited])
    names = [_label_name(model, i) for i in range(probs.shape[1])]
    before, after = int(probs[0].argmax()), int(probs[1].argmax())
    return {"original": names[before], "edited": names[after], "changed": before != after,
            "original_probs": {n: round(float(p), 3) for n, p in zip(names, probs[0])},
            "edited_probs": {n: round(float(p), 3) for n, p in zip(names, probs[1])}}
