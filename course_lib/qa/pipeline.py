"""``transformers.pipeline("question-answering")`` for the models the course trains.

transformers 5 removed its extractive question-answering pipeline (the task name
now points to chat models). :class:`QuestionAnsweringPipeline` brings it back on
top of this package's windows and post-processing, and :func:`register_pipeline`
puts it under the old name.

Registering is an explicit call, never a side effect of ``import course_lib`` or
``import course_lib.qa``: the library may be a dependency of a program that uses
transformers' own registry, and importing it must not change what
``pipeline("question-answering")`` means there.
"""

from __future__ import annotations

from transformers import Pipeline

from ..settings import CourseError
from .features import prepare_features
from .postprocess import MAX_ANSWER_TOKENS, N_BEST, postprocess
from .reader import predict_logits

TASK = "question-answering"


class QuestionAnsweringPipeline(Pipeline):
    """``transformers.pipeline("question-answering", model=folder)``, built on this package.

    A folder written by ``python -m course_lib qa`` (a plain
    ``BertForQuestionAnswering`` checkpoint) loads as before::

        from course_lib.qa import register_pipeline
        from transformers import pipeline

        register_pipeline()
        reader = pipeline("question-answering", model="runs/qa/model")
        reader(question="...", context="...")  # {"answer", "start", "end", "score"}

    One question at a time; all windows of its context go through the model
    together (the course's batched runner). Options: ``max_length`` (384),
    ``stride`` (``max_length // 3``), ``max_answer_len`` (30), ``n_best`` (20),
    ``handle_impossible_answer`` (False: always return a span; True: ``""`` when
    "no answer" scores higher). ``score`` is the span's start + end logit, not a
    probability.
    """

    _load_processor = False
    _load_image_processor = False
    _load_feature_extractor = False
    _load_tokenizer = True

    def _sanitize_parameters(self, max_length=None, stride=None, doc_stride=None,
                             max_answer_len=None, n_best=None, handle_impossible_answer=None,
                             **unused):
        pre, post = {}, {}
        if max_length is not None:
            pre["max_length"] = max_length
        if stride is not None or doc_stride is not None:
            pre["stride"] = stride if stride is not None else doc_stride
        if max_answer_len is not None:
            post["max_answer_length"] = max_answer_len
        if n_best is not None:
            post["n_best"] = n_best
        if handle_impossible_answer is not None:
            post["allow_null"] = bool(handle_impossible_answer)
        return pre, {}, post

    def __call__(self, *args, **kwargs):
        if "question" in kwargs and "context" in kwargs:
            inputs = {"question": kwargs.pop("question"), "context": kwargs.pop("context")}
            return super().__call__(inputs, **kwargs)
        return super().__call__(*args, **kwargs)

    def preprocess(self, inputs, max_length: int = 384, stride: int | None = None):
        if not isinstance(inputs, dict) or not {"question", "context"} <= set(inputs):
            raise CourseError("question-answering pipeline: pass question=... and context=... "
                              "(or a dict with both keys)")
        features = prepare_features({"id": "q", "question": inputs["question"],
                                     "context": inputs["context"]}, self.tokenizer,
                                    max_length, stride, labels=False)
        return {"features": features}

    def _forward(self, inputs):
        start, end = predict_logits(self.model, inputs["features"])
        return {"start": start, "end": end, "features": inputs["features"]}

    def postprocess(self, outputs, max_answer_length: int = MAX_ANSWER_TOKENS,
                    n_best: int = N_BEST, allow_null: bool = False):
        best = postprocess(outputs["features"], outputs["start"], outputs["end"],
                           n_best=n_best, max_answer_length=max_answer_length,
                           allow_null=allow_null)["q"]
        start = best["start"] if best["text"] else 0
        return {"score": best["score"], "start": start, "end": start + len(best["text"]),
                "answer": best["text"]}


def register_pipeline() -> None:
    """Make ``pipeline("question-answering")`` build a :class:`QuestionAnsweringPipeline`.

    Call it once in the program that wants the course's reader (a notebook, a
    serving script); it changes transformers' task registry for the whole process.
    Calling it again does nothing new.
    """
    from transformers import AutoModelForQuestionAnswering, pipelines

    getattr(pipelines, "REMOVED_TASKS", {}).pop(TASK, None)
    pipelines.PIPELINE_REGISTRY.register_pipeline(
        TASK, pipeline_class=QuestionAnsweringPipeline,
        pt_model=AutoModelForQuestionAnswering, type="text")
