"""From start and end scores to answers, and the SQuAD scores of those answers.

For every question, look at all of its windows: take the ``n_best`` start and end
positions, keep pairs that lie in the context, end after they start and are at
most ``max_answer_length`` tokens long, and map the best pair back to characters
of the original context (never ``tokenizer.decode``: it lower-cases, strips
accents and re-spaces). With ``allow_null`` the best span competes with "no
answer". Exact match and F1 are the SQuAD definitions
(:func:`course_lib.metrics.squad_scores`).
"""

from __future__ import annotations

import math

import numpy as np

from ..settings import CourseError
from .features import QAFeatures, as_records

N_BEST = 20
MAX_ANSWER_TOKENS = 30


def _rows(logits) -> list[np.ndarray]:
    """One float64 vector per window, from a padded 2-D array or a list of vectors
    (``batched_outputs`` returns each window at its own length)."""
    if isinstance(logits, np.ndarray) and logits.ndim == 2:
        return list(logits.astype(np.float64, copy=False))
    return [np.asarray(row, dtype=np.float64).reshape(-1) for row in logits]


def postprocess(features: QAFeatures, start_logits, end_logits, *, n_best: int = N_BEST,
                max_answer_length: int = MAX_ANSWER_TOKENS, allow_null: bool = False,
                null_threshold: float = 0.0) -> dict[str, dict]:
    """The best answer of every question, over all of its windows.

    ``start_logits`` / ``end_logits``: one row per window, either a padded 2-D
    array (the Trainer's predictions) or a list of per-window vectors. For each
    window, the ``n_best`` highest start and end scores are paired; a pair counts
    when both tokens are in the context, the end is not before the start, and it
    spans at most ``max_answer_length`` tokens. Its score is ``start + end``; its
    text is cut from the *original* context with the offsets.

    With ``allow_null`` (SQuAD 2.0), "no answer" scores ``start[0] + end[0]`` (the
    [CLS] position). Windows that do not hold the answer all say "no answer"
    loudly, so the question's null score is the *lowest* over its windows; the
    answer is ``""`` when that beats the best span by more than ``null_threshold``.

    Returns ``{id: {"text", "start", "score", "null_score", "window", "candidates"}}``
    (``start`` is the character offset, -1 for no answer). A question without any
    window (a retriever kept none) gets the empty answer.
    """
    starts, ends = _rows(start_logits), _rows(end_logits)
    if len(starts) != len(features) or len(ends) != len(features):
        raise CourseError(f"got logits for {len(starts)} windows, expected {len(features)}")
    by_example: dict[int, list[int]] = {ex: [] for ex in range(len(features.examples))}
    for i, ex in enumerate(features.example_index):
        by_example[ex].append(i)
    out = {}
    for ex, windows in by_example.items():
        record = features.examples[ex]
        context = record["context"]
        candidates, null_score = [], math.inf
        for w in windows:
            offsets = features.offsets[w]
            n = len(offsets)
            s_log, e_log = starts[w][:n], ends[w][:n]
            null_score = min(null_score, s_log[0] + e_log[0])
            for s in np.argsort(s_log)[::-1][:n_best]:
                for e in np.argsort(e_log)[::-1][:n_best]:
                    if offsets[s] is None or offsets[e] is None:
                        continue
                    if e < s or e - s + 1 > max_answer_length:
                        continue
                    start, end = offsets[s][0], offsets[e][1]
                    candidates.append({"text": context[start:end], "start": start,
                                       "score": float(s_log[s] + e_log[e]), "window": w})
        candidates.sort(key=lambda c: -c["score"])
        first = windows[0] if windows else -1
        best = candidates[0] if candidates else {"text": "", "start": -1, "score": -math.inf,
                                                 "window": first}
        if allow_null and null_score > best["score"] + null_threshold:
            best = {"text": "", "start": -1, "score": float(null_score), "window": first}
        out[record["id"]] = {**best, "null_score": float(null_score),
                             "candidates": _unique_texts(candidates, 5)}
    return out


def _unique_texts(candidates: list[dict], k: int) -> list[tuple[str, float]]:
    seen, top = set(), []
    for c in candidates:
        if c["text"] not in seen:
            seen.add(c["text"])
            top.append((c["text"], round(c["score"], 3)))
        if len(top) == k:
            break
    return top


def texts(predictions: dict[str, dict]) -> dict[str, str]:
    """``{id: answer text}`` from :func:`postprocess`'s output."""
    return {qid: p["text"] for qid, p in predictions.items()}


def gold_answers(examples) -> dict[str, list[str]]:
    """``{id: [gold answer texts]}``; an empty list means unanswerable."""
    return {r["id"]: list((r.get("answers") or {}).get("text") or [])
            for r in as_records(examples)}


def gold_logits(features: QAFeatures, high: float = 10.0) -> tuple[np.ndarray, np.ndarray]:
    """Logits that put all the weight on each window's label (a check of the pipeline).

    Feeding them to :func:`postprocess` must give back the gold answers: if it
    does not, windows, labels or offsets are wrong, whatever the model learns.
    """
    n = max(len(o) for o in features.offsets)
    start = np.full((len(features), n), -high)
    end = np.full((len(features), n), -high)
    for i, (s, e) in enumerate(zip(features.dataset["start_positions"],
                                   features.dataset["end_positions"])):
        start[i, s] = high
        end[i, e] = high
    return start, end


def score(features: QAFeatures, start_logits, end_logits, **kwargs) -> dict:
    """Exact match and F1 (percent) of the post-processed answers."""
    from ..metrics import squad_scores

    predictions = postprocess(features, start_logits, end_logits, **kwargs)
    return squad_scores(texts(predictions), gold_answers(features.examples))


def squad_metrics(features: QAFeatures, **kwargs):
    """A ``compute_metrics`` for the Trainer: EM and F1 of the windows it predicted."""

    def compute(preds) -> dict:
        return score(features, preds.outputs["start_logits"], preds.outputs["end_logits"],
                     **kwargs)

    return compute
