"""SQuAD features: (question, context) pairs cut into labelled windows, and which to train on.

A BERT QA model reads ``[CLS] question [SEP] context [SEP]`` and gives every token
a start and an end score. A context longer than the window is cut into
overlapping windows (``stride`` tokens of overlap), each with the question in
front. The tokenizer's offset mapping says which characters of the context every
token came from, so the answer's character span becomes a start and an end
token, or the ``[CLS]`` position (0) when the window does not hold the whole
answer (or the question has none, SQuAD 2.0).

Long documents make most windows "answer elsewhere": :func:`training_windows`
keeps every window that holds its answer and only a share of the others, because
each costs a full forward and backward pass while teaching the same lesson.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..settings import CourseError

# Share of the windows *without* the answer kept for training: 1.0 is the standard
# SQuAD recipe (every window), right when contexts fit in one or two windows. On
# long documents (COVID-QA: ~30 windows a question) the qa command lowers it.
NEGATIVE_SHARE = 1.0
MODEL_INPUTS = ("input_ids", "token_type_ids", "attention_mask")
TOKENIZE_BLOCK = 64  # questions tokenised at once: 64 x 30 windows of offsets, not 800 x 30


class WindowOffsets(Sequence):
    """``offsets[w][t]``: the ``(start, end)`` characters of token ``t`` of window ``w`` in
    its context, or ``None`` for question and special tokens.

    Stored as one small int32 array per window (-1 for ``None``) and turned into a
    list of tuples when a window is read: a COVID-QA training file makes ~30,000
    windows, ~7 million tokens, which as Python tuples would take gigabytes.
    """

    def __init__(self, arrays: list[np.ndarray]):
        self.arrays = arrays

    def __len__(self) -> int:
        return len(self.arrays)

    def __getitem__(self, window):
        if isinstance(window, slice):
            return WindowOffsets(self.arrays[window])
        return [None if start < 0 else (start, end)
                for start, end in self.arrays[window].tolist()]

    def context_span(self, window: int) -> tuple[int, int]:
        rows = self.arrays[window]
        rows = rows[rows[:, 0] >= 0]
        return (int(rows[0, 0]), int(rows[-1, 1])) if len(rows) else (0, 0)

    def subset(self, windows: Sequence[int]) -> WindowOffsets:
        return WindowOffsets([self.arrays[w] for w in windows])


@dataclass
class QAFeatures:
    """Model windows plus what post-processing needs to map them back.

    ``dataset`` holds only what the model takes (``input_ids``, masks, and the
    ``start_positions`` / ``end_positions`` labels), so it can go straight to the
    Trainer. ``example_index[i]`` is the question of window ``i``;
    ``offsets[i][t]`` is the ``(start, end)`` character span of token ``t`` in the
    context, or ``None`` for question and special tokens (:class:`WindowOffsets`).
    """

    dataset: object
    example_index: list[int]
    offsets: WindowOffsets
    examples: list[dict]
    max_length: int
    stride: int

    def __len__(self) -> int:
        return len(self.example_index)

    def windows_of(self, example: int) -> list[int]:
        """Indices of the windows cut from question ``example``."""
        if getattr(self, "_by_example", None) is None:
            self._by_example: dict[int, list[int]] = {}
            for w, ex in enumerate(self.example_index):
                self._by_example.setdefault(ex, []).append(w)
        return list(self._by_example.get(example, []))

    @property
    def has_labels(self) -> bool:
        return "start_positions" in self.dataset.column_names

    def context_span(self, window: int) -> tuple[int, int]:
        """``(first, end)`` characters of the context that window ``window`` shows."""
        return self.offsets.context_span(window)

    def select(self, windows: Sequence[int]) -> QAFeatures:
        """The same questions with only ``windows`` (in the order given): what a
        retriever hands to the reader. Every question keeps its record, so a
        question left without windows is scored as unanswered, not dropped."""
        windows = list(windows)
        return QAFeatures(self.dataset.select(windows),
                          [self.example_index[w] for w in windows],
                          self.offsets.subset(windows), self.examples,
                          self.max_length, self.stride)


def as_records(examples) -> list[dict]:
    """A list of plain dicts (from a ``datasets.Dataset``, a list, or one dict)."""
    if isinstance(examples, dict):
        return [examples]
    return [dict(e) for e in examples]


def answer_char_span(example: dict) -> tuple[int, int] | None:
    """``(start, end)`` characters of the first gold answer, spaces trimmed; None if none.

    SQuAD files sometimes carry answers with a leading or trailing space; the
    tokens of a space do not exist, so the span is trimmed to the visible text.
    """
    answers = example.get("answers") or {}
    texts, starts = answers.get("text") or [], answers.get("answer_start") or []
    if not texts:
        return None
    text, start = texts[0], int(starts[0])
    stripped = text.strip()
    if not stripped:
        return None
    start += len(text) - len(text.lstrip())
    return start, start + len(stripped)


def token_span(offsets: Sequence[tuple[int, int] | None], start_char: int,
               end_char: int) -> tuple[int, int]:
    """Start and end *token* of a character span inside one window, or ``(0, 0)``.

    ``(0, 0)`` points both at ``[CLS]``: the label for "the answer is not (wholly)
    in this window". A window that holds only part of the answer gets it too; the
    overlap (stride) makes sure a neighbouring window holds all of it.
    """
    context = [t for t, span in enumerate(offsets) if span is not None]
    if not context:
        return 0, 0
    if offsets[context[0]][0] > start_char or offsets[context[-1]][1] < end_char:
        return 0, 0
    start = next(t for t in context if offsets[t][1] > start_char)
    end = next(t for t in reversed(context) if offsets[t][0] < end_char)
    return start, end


def prepare_features(examples, tokenizer, max_length: int = 384, stride: int | None = None,
                     labels: bool = True) -> QAFeatures:
    """Cut every (question, context) into overlapping windows of ``max_length`` tokens.

    ``truncation="only_second"`` cuts the context, never the question;
    ``return_overflowing_tokens`` returns *all* windows instead of the first one;
    ``stride`` (default ``max_length // 3``) is how many tokens consecutive windows
    share, so an answer near a cut is whole in at least one of them. No padding
    here: the Trainer pads each batch to its own longest window.
    """
    import datasets

    if not getattr(tokenizer, "is_fast", False):
        raise CourseError("question answering needs a fast tokenizer (offset mapping); "
                          "load it with use_fast=True")
    records = as_records(examples)
    if not records:
        raise CourseError("no questions to prepare")
    stride = max_length // 3 if stride is None else stride
    questions = [r["question"].strip() for r in records]
    longest = max(len(tokenizer(q, add_special_tokens=False)["input_ids"]) for q in questions)
    if longest + 3 + stride >= max_length:
        raise CourseError(f"max_length {max_length} leaves no room for the context after the "
                          f"longest question ({longest} tokens) and stride {stride}: raise "
                          "--max-length or lower the stride")
    example_index, offsets, starts, ends, parts = [], [], [], [], []
    for first in range(0, len(records), TOKENIZE_BLOCK):  # bounded memory on long articles
        block = records[first:first + TOKENIZE_BLOCK]
        enc = tokenizer(questions[first:first + TOKENIZE_BLOCK], [r["context"] for r in block],
                        truncation="only_second", max_length=max_length, stride=stride,
                        return_overflowing_tokens=True, return_offsets_mapping=True,
                        padding=False)
        for i, ex in enumerate(enc["overflow_to_sample_mapping"]):
            window = np.array(enc["offset_mapping"][i], dtype=np.int32).reshape(-1, 2)
            window[[s != 1 for s in enc.sequence_ids(i)]] = -1
            example_index.append(first + ex)
            offsets.append(window)
            if labels:
                span = answer_char_span(block[ex])
                s, e = token_span(WindowOffsets([window])[0], *span) if span else (0, 0)
                starts.append(s)
                ends.append(e)
        part = {k: enc[k] for k in MODEL_INPUTS if k in enc}
        if labels:
            n = len(part["input_ids"])
            part.update(start_positions=starts[-n:], end_positions=ends[-n:])
        parts.append(datasets.Dataset.from_dict(part))  # Arrow, block by block
    dataset = parts[0] if len(parts) == 1 else datasets.concatenate_datasets(parts)
    return QAFeatures(dataset, example_index, WindowOffsets(offsets), records, max_length,
                      stride)


def training_windows(features: QAFeatures, negative_share: float = NEGATIVE_SHARE,
                     seed: int = 42, ranked: dict[int, list[int]] | None = None):
    """The windows to train on: every window that holds its answer, every window of an
    unanswerable question, and ``negative_share`` of the other windows (answer elsewhere).

    Those other windows (label: [CLS]) teach the model to say "not in this window",
    but a long passage makes many of them and each costs as much compute as a
    window with an answer. ``negative_share=1.0`` keeps them all (the standard
    recipe, :data:`NEGATIVE_SHARE`); 0.0 keeps none.

    Which negatives: by default a random ``negative_share`` of them (seeded). With
    ``ranked`` (``{question: its windows, most similar to the question first}``, from
    :func:`course_lib.qa.retrieval.rank_windows`) every question keeps its
    *top-ranked* negatives instead, ``negative_share`` of its own: the look-alike
    windows a retrieve-then-read reader must learn to turn down at test time.
    Returns a ``datasets.Dataset`` for the Trainer.
    """
    if not features.has_labels:
        raise CourseError("these features have no labels (prepare_features(..., labels=True))")
    if not 0.0 <= negative_share <= 1.0:
        raise CourseError(f"negative_share {negative_share}: must be between 0 and 1")
    starts = features.dataset["start_positions"]
    answerable = [answer_char_span(r) is not None for r in features.examples]
    positive = [s > 0 or not answerable[ex] for s, ex in zip(starts, features.example_index)]
    if ranked is None:
        rng = np.random.default_rng(seed)
        draws = rng.random(len(starts))
        keep = [i for i in range(len(starts)) if positive[i] or draws[i] < negative_share]
    else:
        chosen = {i for i in range(len(starts)) if positive[i]}
        for windows in ranked.values():
            negatives = [w for w in windows if not positive[w]]
            chosen.update(negatives[:round(negative_share * len(negatives))])
        keep = sorted(chosen)
    return features.dataset.select(keep)
