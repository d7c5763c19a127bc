"""Domain tokens: new vocabulary entries for words the WordPiece vocabulary shreds.

Each new embedding row starts at the mean of the word's old pieces (not at random),
so the model reads the new token roughly as it read the pieces.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

import torch
from torch import nn

from .. import settings
from ..settings import CourseError

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
                      init: str = "pieces", seed: int | None = None) -> DomainTokens:
    """Add ``words`` to the tokenizer as whole tokens and give each an embedding row.

    ``model``: the Hugging Face backbone (anything with ``resize_token_embeddings``).
    ``init="pieces"``: each new row is the mean of the word's old word-piece rows,
    so the model first reads the new token roughly as it read the pieces and
    training starts near the pretrained model. ``init="resize_default"`` keeps
    what ``resize_token_embeddings`` does by default (a random draw around the
    mean of the *whole* vocabulary: the same generic vector for every word).

    ``seed``: the random draw of the new rows (before ``init="pieces"`` overwrites
    them) comes from it without touching the global random streams (``None``: from
    the current global stream).

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
    with settings.seeded(seed):  # resize draws the new rows at random first
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
