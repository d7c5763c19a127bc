"""How good a sample is: exact and near duplicates, and text filled in from templates.

The course's bundled samples are hand-written; these checks hold them to that
(tests/test_data_samples.py) and a learner can run them on their own data.
Templated text repeats most of its word 5-grams and teaches a model the
template, not the task.
"""

from __future__ import annotations

import re
from collections import Counter

from .records import text_key


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


def repeated_ngram_share(texts: list[str], n: int = 5) -> float:
    """Share of word n-grams (counted once per text) that also occur in another text.

    Hand-written text repeats few 5-grams (under 2% in the course samples);
    text filled in from templates repeats most of them.
    """
    grams = Counter()
    for text in texts:
        words = _words(text)
        grams.update({tuple(words[i : i + n]) for i in range(len(words) - n + 1)})
    total = sum(grams.values())
    return sum(c for c in grams.values() if c > 1) / total if total else 0.0


def near_duplicate_pairs(texts: list[str], threshold: float = 0.5, n: int = 3
                         ) -> list[tuple[int, int, float]]:
    """Pairs of texts whose word-trigram sets overlap by Jaccard >= ``threshold``."""
    shingles = []
    for text in texts:
        words = _words(text)
        shingles.append({tuple(words[i : i + n]) for i in range(max(1, len(words) - n + 1))})
    pairs = []
    for i in range(len(shingles)):
        a = shingles[i]
        for j in range(i + 1, len(shingles)):
            b = shingles[j]
            small, large = sorted((len(a), len(b)))
            if not large or small / large < threshold:  # Jaccard <= small/large
                continue
            jaccard = len(a & b) / len(a | b)
            if jaccard >= threshold:
                pairs.append((i, j, jaccard))
    return pairs


def text_quality(texts: list[str]) -> dict:
    """Duplicate and template checks for a list of texts (a sample, or your own data)."""
    texts = list(texts)
    pairs = near_duplicate_pairs(texts)
    involved = {i for i, _, _ in pairs} | {j for _, j, _ in pairs}
    return {"texts": len(texts),
            "exact_duplicates": len(texts) - len({text_key(t) for t in texts}),
            "near_duplicate_rate": len(involved) / max(len(texts), 1),
            "repeated_5gram_share": repeated_ngram_share(texts, 5)}
