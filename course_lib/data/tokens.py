"""Token lengths, the ``max_length`` they call for, and tokenising a dataset once.

Choosing ``max_length`` from the data (the smallest multiple of 8 that fits 99%
of examples) instead of a habit of 512 is the cheapest speed-up in the course:
attention cost grows with the square of the length. Tokenising happens once,
with ``datasets.map``; padding happens per batch in the Trainer.
"""

from __future__ import annotations

import numpy as np

from .. import settings


def token_lengths(dataset, tokenizer, column: str = "text",
                  pair_column: str | None = None) -> np.ndarray:
    """Tokens per example, special tokens included, without truncation."""
    texts = list(dataset[column])
    pairs = list(dataset[pair_column]) if pair_column else None
    encoded = tokenizer(texts, pairs, truncation=False, add_special_tokens=True,
                        return_attention_mask=False, return_token_type_ids=False, verbose=False)
    return np.array([len(ids) for ids in encoded["input_ids"]])


def choose_max_length(lengths, coverage: float = 0.99, multiple_of: int = 8,
                      limit: int = 512) -> int:
    """The smallest ``max_length`` (a multiple of 8, at most ``limit``) that fits
    ``coverage`` of the examples untruncated. Longer examples are truncated (or,
    for QA, split into windows)."""
    value = float(np.quantile(np.asarray(lengths), coverage))
    return int(min(limit, int(np.ceil(value / multiple_of)) * multiple_of))


def tokenize(dataset, tokenizer, *, text_column: str = "text", pair_column: str | None = None,
             label_column: str | None = "label", max_length: int = 128,
             truncation: str | bool = True):
    """Tokenise once with ``datasets.map`` (batched, fast tokenizer), no padding.

    Padding happens per batch in the Trainer (dynamic padding). The label column is
    renamed ``labels``, the name Hugging Face models expect.
    """

    def encode(batch):
        pair = batch[pair_column] if pair_column else None
        return tokenizer(batch[text_column], pair, truncation=truncation, max_length=max_length)

    from datasets import disable_progress_bars, enable_progress_bars, is_progress_bar_enabled

    was_enabled = is_progress_bar_enabled()
    if not settings.show_progress():
        disable_progress_bars()
    try:
        out = dataset.map(encode, batched=True)
    finally:  # leave the user's choice as it was
        if was_enabled:
            enable_progress_bars()
    if label_column and label_column != "labels":
        out = out.rename_column(label_column, "labels")
    return out
