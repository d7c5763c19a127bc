"""Running the reader: start and end logits of windows, and one question answered.

The forward passes go through the course's one inference runner,
:func:`course_lib.training.batched_outputs` (length-sorted batches, dynamic
padding, eval mode, no gradients): a question's windows, or all windows of a
test set, are batched together however many questions they come from.
"""

from __future__ import annotations

import numpy as np

from ..settings import CourseError
from .features import MODEL_INPUTS, QAFeatures, prepare_features
from .postprocess import postprocess

LOGITS = ("start_logits", "end_logits")


def predict_logits(model, features: QAFeatures, batch_size: int = 64
                   ) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Start and end logits of every window, in the features' order.

    Each window's vectors have that window's own length (no padding to mask out);
    :func:`~course_lib.qa.postprocess.postprocess` takes them as they are.
    """
    from ..training import batched_outputs

    if len(features) == 0:
        return [], []
    pad = getattr(getattr(model, "config", None), "pad_token_id", None) or 0
    out = batched_outputs(model, features.dataset, batch_size=batch_size, pad_token_id=pad,
                          keep=MODEL_INPUTS, sequence_outputs=LOGITS)
    return ([t.float().numpy() for t in out["start_logits"]],
            [t.float().numpy() for t in out["end_logits"]])


def answer(model, tokenizer, question: str, context: str, *, max_length: int = 384,
           stride: int | None = None, allow_null: bool = True, **kwargs) -> dict:
    """Answer one question about one passage (what the widget and a quick try use)."""
    if not question.strip() or not context.strip():
        raise CourseError("both a question and a passage are needed")
    features = prepare_features({"id": "q", "question": question, "context": context},
                                tokenizer, max_length, stride, labels=False)
    start, end = predict_logits(model, features)
    return postprocess(features, start, end, allow_null=allow_null, **kwargs)["q"]
