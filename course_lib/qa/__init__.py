"""Extractive question answering, SQuAD style, for contexts of any length.

The rooms, in the order a question goes through them:

- :mod:`~course_lib.qa.features`: (question, context) -> overlapping labelled windows
  with their character offsets; which windows to train on (:func:`training_windows`).
- :mod:`~course_lib.qa.retrieval`: for long articles, rank a question's windows by
  similarity to it (the packaged sentence-embedding backbone) and read only the top k.
- :mod:`~course_lib.qa.reader`: start/end logits through the course's one batched
  inference runner; :func:`answer` for one question.
- :mod:`~course_lib.qa.postprocess`: n-best spans over all windows, maximum answer
  length, "no answer", back to characters; exact match and F1.
- :mod:`~course_lib.qa.analysis`: error table, where answers sit, a word-overlap
  baseline, the "ask this passage" widget.
- :mod:`~course_lib.qa.pipeline`: ``transformers.pipeline("question-answering")`` for
  the models the course trains, registered only by :func:`register_pipeline`
  (importing this package leaves transformers' task registry alone).

The ``qa`` command line lives in :mod:`course_lib.cli.qa_command`.
"""

from .analysis import ask_widget, error_table, overlap_baseline, where_is_answer
from .features import (
    NEGATIVE_SHARE,
    QAFeatures,
    answer_char_span,
    prepare_features,
    token_span,
    training_windows,
)
from .postprocess import (
    MAX_ANSWER_TOKENS,
    N_BEST,
    gold_answers,
    gold_logits,
    postprocess,
    score,
    squad_metrics,
    texts,
)
from .reader import answer, predict_logits
from .retrieval import TOP_K, Ranking, compare_retrieval, load_retriever, rank_windows, recall_at

_PIPELINE_NAMES = ("QuestionAnsweringPipeline", "register_pipeline")


def __getattr__(name: str):
    """The pipeline names load transformers' Pipeline machinery: imported on first use."""
    if name in _PIPELINE_NAMES:
        from . import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["MAX_ANSWER_TOKENS", "NEGATIVE_SHARE", "N_BEST", "TOP_K", "QAFeatures",
           "QuestionAnsweringPipeline", "Ranking", "answer", "answer_char_span", "ask_widget",
           "compare_retrieval", "error_table", "gold_answers", "gold_logits", "load_retriever",
           "overlap_baseline", "postprocess", "predict_logits", "prepare_features",
           "rank_windows", "recall_at", "register_pipeline", "score", "squad_metrics", "texts",
           "token_span", "training_windows", "where_is_answer"]
