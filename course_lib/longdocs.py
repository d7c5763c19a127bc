"""Documents longer than the model's window: truncation and chunking.

BERT reads at most ``max_position_embeddings`` tokens (512); a quick run often
uses a smaller window still, because cost grows with length. A longer document
has to lose something. Three answers, all measured in notebook 10:

- **head**: keep the first tokens (what ``truncation=True`` does). Cheap, and
  it drops the end of the text, where abstracts put their conclusion.
- **head + tail**: keep the first ``head_tokens`` and the last tokens of the
  document, drop the middle. Sun et al. (2019) found head 128 + tail 382 the
  best single window for long reviews; the default here keeps the same 1:3 split.
- **chunks**: cut the document into overlapping windows, classify every
  window, then pool the windows' probabilities into one prediction per document.
  Nothing is lost, but it costs one forward pass per window.

Everything works on token ids *without* special tokens; ``[CLS]`` / ``[SEP]`` are
added after cutting, so every window is a well-formed BERT input.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from .settings import CourseError

TRUNCATIONS = ("head", "tail", "head_tail")
STRATEGIES = (*TRUNCATIONS, "chunks")
POOLINGS = ("mean", "max", "logits")


# ---------------------------------------------------------------- token-level cuts
def truncate_ids(ids: Sequence[int], budget: int, strategy: str = "head_tail",
                 head_tokens: int | None = None) -> list[int]:
    """At most ``budget`` token ids of a document, chosen by ``strategy``.

    ``head_tail`` keeps ``head_tokens`` from the start (default: a quarter of
    the budget) and fills the rest from the end, so the conclusion survives.
    """
    if strategy not in TRUNCATIONS:
        raise CourseError(f"truncation strategy {strategy!r} is not one of "
                          f"{', '.join(TRUNCATIONS)}")
    if budget < 1:
        raise CourseError(f"budget={budget}: a window must hold at least one token")
    ids = list(ids)
    if len(ids) <= budget:
        return ids
    if strategy == "head":
        return ids[:budget]
    if strategy == "tail":
        return ids[-budget:]
    head = budget // 4 if head_tokens is None else min(max(head_tokens, 0), budget)
    return ids[:head] + ids[len(ids) - (budget - head):]


def chunk_ids(ids: Sequence[int], budget: int, overlap: int = 0) -> list[list[int]]:
    """Windows of at most ``budget`` ids that cover the whole document.

    Consecutive windows share ``overlap`` ids, so a phrase cut at one window's
    edge is seen whole in the next. The last window ends at the document's end.
    """
    if budget < 1:
        raise CourseError(f"budget={budget}: a window must hold at least one token")
    if not 0 <= overlap < budget:
        raise CourseError(f"overlap={overlap} must be at least 0 and smaller than the "
                          f"window's {budget} content tokens")
    ids = list(ids)
    step = budget - overlap
    windows, start = [], 0
    while True:
        windows.append(ids[start:start + budget])
        if start + budget >= len(ids):
            return windows
        start += step


def count_chunks(length: int, budget: int, overlap: int = 0) -> int:
    """How many windows :func:`chunk_ids` makes for ``length`` content tokens."""
    if length <= budget:
        return 1
    return 1 + math.ceil((length - budget) / (budget - overlap))


# ---------------------------------------------------------------- encoding texts
def _content_budget(tokenizer, max_length: int) -> int:
    budget = max_length - tokenizer.num_special_tokens_to_add(pair=False)
    if budget < 1:
        raise CourseError(f"max_length={max_length} leaves no room for text after the special "
                          "tokens")
    return budget


def _with_special_tokens(tokenizer, ids: list[int]) -> list[int]:
    """``[CLS] ids [SEP]`` (the fast tokenizers of transformers 5 no longer expose
    ``build_inputs_with_special_tokens``)."""
    if tokenizer.cls_token_id is None or tokenizer.sep_token_id is None:
        raise CourseError("the tokenizer has no [CLS]/[SEP] tokens; longdocs expects a "
                          "BERT-style tokenizer")
    return [tokenizer.cls_token_id, *ids, tokenizer.sep_token_id]


def _content_ids(tokenizer, texts: Sequence[str]) -> list[list[int]]:
    """Token ids of whole documents, no special tokens, nothing cut (and no warning
    about texts longer than the model: cutting them is the point)."""
    return tokenizer(list(texts), add_special_tokens=False, truncation=False,
                     verbose=False)["input_ids"]


def _features(tokenizer, windows: list[list[int]]) -> dict[str, list[list[int]]]:
    input_ids = [_with_special_tokens(tokenizer, w) for w in windows]
    return {"input_ids": input_ids,
            "attention_mask": [[1] * len(ids) for ids in input_ids],
            "token_type_ids": [[0] * len(ids) for ids in input_ids]}


def encode_truncated(tokenizer, texts: Sequence[str], max_length: int,
                     strategy: str = "head_tail", head_tokens: int | None = None) -> dict:
    """Model inputs of at most ``max_length`` tokens per text, cut by ``strategy``."""
    budget = _content_budget(tokenizer, max_length)
    cut = [truncate_ids(ids, budget, strategy, head_tokens)
           for ids in _content_ids(tokenizer, texts)]
    return _features(tokenizer, cut)


def encode_chunks(tokenizer, texts: Sequence[str], max_length: int,
                  overlap: int = 0) -> dict:
    """Every window of every text as model inputs, plus ``doc_id`` (which text it came from)."""
    budget = _content_budget(tokenizer, max_length)
    windows, doc_ids = [], []
    for doc, ids in enumerate(_content_ids(tokenizer, texts)):
        for window in chunk_ids(ids, budget, overlap):
            windows.append(window)
            doc_ids.append(doc)
    return {**_features(tokenizer, windows), "doc_id": doc_ids}


def window_stats(tokenizer, texts: Sequence[str], max_length: int, overlap: int = 0) -> dict:
    """How much a window of ``max_length`` tokens loses on these texts, and what chunking costs."""
    budget = _content_budget(tokenizer, max_length)
    lengths = np.array([len(ids) for ids in _content_ids(tokenizer, texts)])
    chunks = np.array([count_chunks(n, budget, overlap) for n in lengths])
    lost = np.clip(lengths - budget, 0, None)
    return {"documents": len(lengths), "median_tokens": float(np.median(lengths)),
            "max_tokens": int(lengths.max()) if len(lengths) else 0,
            "truncated_share": float((lengths > budget).mean()) if len(lengths) else 0.0,
            "tokens_lost_share": float(lost.sum() / max(lengths.sum(), 1)),
            "windows_per_document": float(chunks.mean()) if len(chunks) else 0.0}


# ---------------------------------------------------------------- datasets for the Trainer
def tokenize_long(dataset, tokenizer, *, strategy: str = "head_tail", max_length: int = 512,
                  overlap: int = 0, head_tokens: int | None = None, text_column: str = "text",
                  label_column: str | None = "label"):
    """A ``datasets.Dataset`` of model inputs for ``strategy`` (head, tail, head_tail, chunks).

    Each row has ``input_ids``, ``attention_mask``, ``token_type_ids``, ``doc_id``
    and ``labels``. With ``chunks`` there is one row per window and every window
    carries its document's label (the Trainer ignores ``doc_id``; the pooling
    uses it).
    """
    import datasets

    if strategy not in STRATEGIES:
        raise CourseError(f"strategy {strategy!r} is not one of {', '.join(STRATEGIES)}")
    if text_column not in dataset.column_names:
        raise CourseError(f"column {text_column!r} not in the dataset "
                          f"(found {', '.join(dataset.column_names)})")
    texts = list(dataset[text_column])
    if strategy == "chunks":
        features = encode_chunks(tokenizer, texts, max_length, overlap)
    else:
        features = encode_truncated(tokenizer, texts, max_length, strategy, head_tokens)
        features["doc_id"] = list(range(len(texts)))
    if label_column:
        labels = list(dataset[label_column])
        features["labels"] = [labels[d] for d in features["doc_id"]]
    return datasets.Dataset.from_dict(features)


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(-1, keepdims=True)


def pool_windows(logits, doc_ids, how: str = "mean", n_docs: int | None = None) -> np.ndarray:
    """One row of class scores per document from its windows' logits.

    ``mean``: average the windows' probabilities (every window votes, softly);
    ``max``: each class's highest probability in any window (one confident window
    decides: good when the evidence sits in one place); ``logits``: softmax of the
    averaged logits. Rows are in document order 0..n_docs-1.
    """
    if how not in POOLINGS:
        raise CourseError(f"pooling {how!r} is not one of {', '.join(POOLINGS)}")
    logits = np.asarray(logits, dtype=np.float64)
    doc_ids = np.asarray(doc_ids)
    if logits.ndim != 2 or len(logits) != len(doc_ids):
        raise CourseError(f"{len(doc_ids)} doc ids for logits of shape {logits.shape}: one id "
                          "per window is needed")
    n_docs = int(doc_ids.max()) + 1 if n_docs is None else n_docs
    probs = _softmax(logits)
    out = np.zeros((n_docs, logits.shape[1]))
    for doc in range(n_docs):
        rows = doc_ids == doc
        if not rows.any():
            raise CourseError(f"document {doc} has no window")
        if how == "mean":
            out[doc] = probs[rows].mean(0)
        elif how == "max":
            out[doc] = probs[rows].max(0)
        else:
            out[doc] = _softmax(logits[rows].mean(0, keepdims=True))[0]
    return out


def predict_documents(trainer, windows, how: str = "mean") -> np.ndarray:
    """Per-document class scores for a :func:`tokenize_long` dataset (any strategy)."""
    preds = trainer.predict(windows)
    return pool_windows(preds.logits, windows["doc_id"], how)
