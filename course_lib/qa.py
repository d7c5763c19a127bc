"""Extractive question answering, SQuAD style: features, post-processing, scoring.

A BERT QA model reads ``[CLS] question [SEP] context [SEP]`` and gives every
token two scores: how likely the answer *starts* there and how likely it *ends*
there. Three things turn that into a working system, and each lives here:

1. **Features** (:func:`prepare_features`). A context longer than the model's
   window is cut into overlapping windows (``stride`` tokens of overlap), each
   with the question in front. The tokenizer's offset mapping says which
   characters of the context every token came from, so the answer's character
   span becomes a start and an end token, or the ``[CLS]`` position (0) when the
   window does not hold the whole answer (or the question has none, SQuAD 2.0).
2. **Post-processing** (:func:`postprocess`). For every question, look at all of
   its windows: take the ``n_best`` start and end positions, keep pairs that lie
   in the context, end after they start and are at most ``max_answer_length``
   tokens long, and map the best pair back to characters of the original
   context (never ``tokenizer.decode``: it lower-cases, strips accents and
   re-spaces). With ``allow_null`` the best span competes with "no answer".
3. **Scoring**: exact match and F1 on normalised text, the SQuAD definitions
   (:func:`course_lib.metrics.squad_scores`).

:func:`run_qa_command` is ``python -m course_lib qa``: train on a SQuAD file,
score on another, save a model that ``transformers.pipeline("question-answering")``
loads.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .settings import CourseError

# The course's recipe for the quick backbone (a 6-layer MiniLM); bert-base wants
# lr 3e-5 and 2 epochs (the SQuAD paper's schedule).
DEFAULTS = {"epochs": 3, "lr": 2e-4, "batch_size": 16, "max_length": 384, "seed": 42,
            "strategy": "full"}
N_BEST = 20
MAX_ANSWER_TOKENS = 30


# ------------------------------------------------------------------ features
@dataclass
class QAFeatures:
    """Model windows plus what post-processing needs to map them back.

    ``dataset`` holds only what the model takes (``input_ids``, masks, and the
    ``start_positions`` / ``end_positions`` labels), so it can go straight to the
    Trainer. ``example_index[i]`` is the question of window ``i``;
    ``offsets[i][t]`` is the ``(start, end)`` character span of token ``t`` in the
    context, or ``None`` for question and special tokens.
    """

    dataset: object
    example_index: list[int]
    offsets: list[list[tuple[int, int] | None]]
    examples: list[dict]
    max_length: int
    stride: int

    def __len__(self) -> int:
        return len(self.example_index)

    def windows_of(self, example: int) -> list[int]:
        """Indices of the windows cut from question ``example``."""
        return [i for i, e in enumerate(self.example_index) if e == example]

    @property
    def has_labels(self) -> bool:
        return "start_positions" in self.dataset.column_names


def _as_records(examples) -> list[dict]:
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
    records = _as_records(examples)
    if not records:
        raise CourseError("no questions to prepare")
    stride = max_length // 3 if stride is None else stride
    questions = [r["question"].strip() for r in records]
    longest = max(len(tokenizer(q, add_special_tokens=False)["input_ids"]) for q in questions)
    if longest + 3 + stride >= max_length:
        raise CourseError(f"max_length {max_length} leaves no room for the context after the "
                          f"longest question ({longest} tokens) and stride {stride}: raise "
                          "--max-length or lower the stride")
    enc = tokenizer(questions, [r["context"] for r in records], truncation="only_second",
                    max_length=max_length, stride=stride, return_overflowing_tokens=True,
                    return_offsets_mapping=True, padding=False)
    example_index = list(enc["overflow_to_sample_mapping"])
    offsets, starts, ends = [], [], []
    for i, ex in enumerate(example_index):
        seq = enc.sequence_ids(i)
        window = [tuple(o) if s == 1 else None for o, s in zip(enc["offset_mapping"][i], seq)]
        offsets.append(window)
        if labels:
            span = answer_char_span(records[ex])
            s, e = token_span(window, *span) if span else (0, 0)
            starts.append(s)
            ends.append(e)
    columns = {k: list(enc[k]) for k in ("input_ids", "token_type_ids", "attention_mask")
               if k in enc}
    if labels:
        columns.update(start_positions=starts, end_positions=ends)
    return QAFeatures(datasets.Dataset.from_dict(columns), example_index, offsets, records,
                      max_length, stride)


def training_windows(features: QAFeatures, negative_share: float = 1.0, seed: int = 42):
    """The windows to train on: every window that holds its answer, every window of an
    unanswerable question, and ``negative_share`` of the other windows (answer elsewhere).

    Those other windows (label: [CLS]) teach the model to say "not in this window",
    but a long passage makes many of them and each costs as much compute as a
    window with an answer. ``negative_share=1.0`` keeps them all (the standard recipe).
    """
    if not features.has_labels:
        raise CourseError("these features have no labels (prepare_features(..., labels=True))")
    rng = np.random.default_rng(seed)
    keep = []
    for i, (start, ex) in enumerate(zip(features.dataset["start_positions"],
                                        features.example_index)):
        unanswerable = answer_char_span(features.examples[ex]) is None
        if start > 0 or unanswerable or rng.random() < negative_share:
            keep.append(i)
    return features.dataset.select(keep)


# ----------------------------------------------------------- post-processing
def postprocess(features: QAFeatures, start_logits, end_logits, *, n_best: int = N_BEST,
                max_answer_length: int = MAX_ANSWER_TOKENS, allow_null: bool = False,
                null_threshold: float = 0.0) -> dict[str, dict]:
    """The best answer of every question, over all of its windows.

    For each window, the ``n_best`` highest start and end scores are paired; a
    pair counts when both tokens are in the context, the end is not before the
    start, and it spans at most ``max_answer_length`` tokens. Its score is
    ``start + end``; its text is cut from the *original* context with the offsets.

    With ``allow_null`` (SQuAD 2.0), "no answer" scores ``start[0] + end[0]`` (the
    [CLS] position). Windows that do not hold the answer all say "no answer"
    loudly, so the question's null score is the *lowest* over its windows; the
    answer is ``""`` when that beats the best span by more than ``null_threshold``.

    Returns ``{id: {"text", "start", "score", "null_score", "window", "candidates"}}``
    (``start`` is the character offset, -1 for no answer).
    """
    start_logits = np.asarray(start_logits, dtype=np.float64)
    end_logits = np.asarray(end_logits, dtype=np.float64)
    if len(start_logits) != len(features):
        raise CourseError(f"got logits for {len(start_logits)} windows, expected {len(features)}")
    by_example: dict[int, list[int]] = {}
    for i, ex in enumerate(features.example_index):
        by_example.setdefault(ex, []).append(i)
    out = {}
    for ex, windows in by_example.items():
        record = features.examples[ex]
        context = record["context"]
        candidates, null_score = [], math.inf
        for w in windows:
            offsets = features.offsets[w]
            n = len(offsets)
            s_log, e_log = start_logits[w][:n], end_logits[w][:n]
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
        best = candidates[0] if candidates else {"text": "", "start": -1, "score": -math.inf,
                                                 "window": windows[0]}
        if allow_null and null_score > best["score"] + null_threshold:
            best = {"text": "", "start": -1, "score": float(null_score), "window": windows[0]}
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
            for r in _as_records(examples)}


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
    from .metrics import squad_scores

    predictions = postprocess(features, start_logits, end_logits, **kwargs)
    return squad_scores(texts(predictions), gold_answers(features.examples))


def squad_metrics(features: QAFeatures, **kwargs):
    """A ``compute_metrics`` for the Trainer: EM and F1 of the windows it predicted."""

    def compute(preds) -> dict:
        return score(features, preds.outputs["start_logits"], preds.outputs["end_logits"],
                     **kwargs)

    return compute


# ----------------------------------------------------------------- inference
def predict_logits(model, features: QAFeatures, batch_size: int = 64
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Start and end logits of every window, batched over *all* windows at once.

    Windows are sorted by length so each batch pads little; the results come back
    in the features' order, padded with -1e4 (never chosen).
    """
    import torch

    from .batching import PadCollator, to_tensors

    keep = {"input_ids", "token_type_ids", "attention_mask"}
    examples = to_tensors(features.dataset, keep=keep)
    collate = PadCollator(0)
    order = sorted(range(len(examples)), key=lambda i: -len(examples[i]["input_ids"]))
    n = max(len(o) for o in features.offsets)
    start = np.full((len(examples), n), -1e4, dtype=np.float32)
    end = np.full((len(examples), n), -1e4, dtype=np.float32)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    with torch.inference_mode():
        for b in range(0, len(order), batch_size):
            idx = order[b : b + batch_size]
            batch = {k: v.to(device) for k, v in collate([examples[i] for i in idx]).items()}
            out = model(**batch)
            width = batch["input_ids"].shape[1]
            start[idx, :width] = out.start_logits.float().cpu().numpy()
            end[idx, :width] = out.end_logits.float().cpu().numpy()
    model.train(was_training)
    return start, end


def answer(model, tokenizer, question: str, context: str, *, max_length: int = 384,
           stride: int | None = None, allow_null: bool = True, **kwargs) -> dict:
    """Answer one question about one passage (what the widget and a quick try use)."""
    if not question.strip() or not context.strip():
        raise CourseError("both a question and a passage are needed")
    features = prepare_features({"id": "q", "question": question, "context": context},
                                tokenizer, max_length, stride, labels=False)
    start, end = predict_logits(model, features)
    return postprocess(features, start, end, allow_null=allow_null, **kwargs)["q"]


# ------------------------------------------------------------------ pipeline
def _pipeline_base():
    from transformers import Pipeline

    return Pipeline


class QuestionAnsweringPipeline(_pipeline_base()):
    """``transformers.pipeline("question-answering", model=folder)``, built on this module.

    transformers 5 removed its extractive question-answering pipeline (it points to
    chat models instead). Importing ``course_lib.qa`` registers this one under the
    old name, so a folder written by ``python -m course_lib qa`` (a plain
    ``BertForQuestionAnswering`` checkpoint) loads as before::

        import course_lib.qa  # registers the pipeline
        from transformers import pipeline
        reader = pipeline("question-answering", model="runs/qa/model")
        reader(question="...", context="...")  # {"answer", "start", "end", "score"}

    One question at a time; all windows of its context go through the model as one
    batch. Options: ``max_length`` (384), ``stride`` (``max_length // 3``),
    ``max_answer_len`` (30), ``n_best`` (20), ``handle_impossible_answer`` (False:
    always return a span; True: ``""`` when "no answer" scores higher). ``score`` is
    the span's start + end logit, not a probability.
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
        from .batching import PadCollator, to_tensors

        if not isinstance(inputs, dict) or not {"question", "context"} <= set(inputs):
            raise CourseError("question-answering pipeline: pass question=... and context=... "
                              "(or a dict with both keys)")
        features = prepare_features({"id": "q", "question": inputs["question"],
                                     "context": inputs["context"]}, self.tokenizer,
                                    max_length, stride, labels=False)
        windows = to_tensors(features.dataset)
        batch = PadCollator(self.tokenizer.pad_token_id or 0)(windows)
        return {"model_inputs": batch, "features": features}

    def _forward(self, inputs):
        out = self.model(**inputs["model_inputs"])
        return {"start": out.start_logits.float().cpu().numpy(),
                "end": out.end_logits.float().cpu().numpy(), "features": inputs["features"]}

    def postprocess(self, outputs, max_answer_length: int = MAX_ANSWER_TOKENS,
                    n_best: int = N_BEST, allow_null: bool = False):
        best = postprocess(outputs["features"], outputs["start"], outputs["end"],
                           n_best=n_best, max_answer_length=max_answer_length,
                           allow_null=allow_null)["q"]
        start = best["start"] if best["text"] else 0
        return {"score": best["score"], "start": start, "end": start + len(best["text"]),
                "answer": best["text"]}


def register_pipeline() -> None:
    """Make ``pipeline("question-answering")`` use :class:`QuestionAnsweringPipeline`."""
    from transformers import AutoModelForQuestionAnswering, pipelines

    getattr(pipelines, "REMOVED_TASKS", {}).pop("question-answering", None)
    pipelines.PIPELINE_REGISTRY.register_pipeline(
        "question-answering", pipeline_class=QuestionAnsweringPipeline,
        pt_model=AutoModelForQuestionAnswering, type="text")


register_pipeline()


# ------------------------------------------------------------ error analysis
def where_is_answer(features: QAFeatures) -> dict[str, int | None]:
    """For each question, the first window (0, 1, 2, ...) that holds its whole gold answer.

    None when the question is unanswerable; -1 when no window holds it whole (the
    answer is longer than a window, or a mid-word span).
    """
    out: dict[str, int | None] = {}
    for ex, record in enumerate(features.examples):
        span = answer_char_span(record)
        if span is None:
            out[record["id"]] = None
            continue
        found = -1
        for k, w in enumerate(features.windows_of(ex)):
            if token_span(features.offsets[w], *span) != (0, 0):
                found = k
                break
        out[record["id"]] = found
    return out


def error_table(features: QAFeatures, predictions: dict[str, dict]):
    """One row per question: gold, prediction, EM, F1, answer window and a category.

    Categories: ``correct``; ``partial`` (overlaps the gold answer); ``wrong span``;
    ``missed`` (said "no answer" to an answerable question); ``false answer``
    (answered an unanswerable one); ``correct no-answer``.
    """
    import pandas as pd

    from .metrics import exact_match, token_f1

    windows = where_is_answer(features)
    rows = []
    for ex, record in enumerate(features.examples):
        golds = (record.get("answers") or {}).get("text") or []
        pred = predictions[record["id"]]["text"]
        em = max(exact_match(pred, g) for g in golds or [""])
        f1 = max(token_f1(pred, g) for g in golds or [""])
        if not golds:
            category = "correct no-answer" if not pred else "false answer"
        elif not pred:
            category = "missed"
        elif em == 1:
            category = "correct"
        elif f1 > 0:
            category = "partial"
        else:
            category = "wrong span"
        rows.append({"id": record["id"], "question": record["question"],
                     "gold": golds[0] if golds else "", "prediction": pred, "em": em,
                     "f1": round(f1, 3), "answer_window": windows[record["id"]],
                     "n_windows": len(features.windows_of(ex)), "category": category})
    return pd.DataFrame(rows)


_STOP = set("a an the of in on at to for by with and or is are was were be been what which who "
            "whom whose when where why how did does do that this these those from as into than "
            "it its their his her they after before during".split())


def overlap_baseline(examples) -> dict[str, str]:
    """A trivial reader: answer with the context sentence sharing most words with the question.

    No learning at all; a trained model must beat it by a wide margin.
    """
    out = {}
    for r in _as_records(examples):
        words = {w for w in re.findall(r"\w+", r["question"].lower()) if w not in _STOP}
        sentences = re.split(r"(?<=[.!?])\s+", r["context"].strip())
        best = max(sentences, key=lambda s: len(words & set(re.findall(r"\w+", s.lower()))))
        out[r["id"]] = best
    return out


# -------------------------------------------------------------------- widget
def ask_widget(model, tokenizer, passages: dict[str, str], max_length: int = 384):
    """"Ask a question about this passage": pick a passage, type a question, see the answer
    highlighted in the text (ipywidgets)."""
    import html

    import ipywidgets as widgets

    titles = list(passages)
    choose = widgets.Dropdown(options=titles, description="passage",
                              layout=widgets.Layout(width="95%"))
    question = widgets.Text(placeholder="type a question and press Enter",
                            description="question", layout=widgets.Layout(width="95%"))
    shown = widgets.HTML()

    def render(*_):
        context = passages[choose.value]
        text = html.escape(context)
        note = ""
        if question.value.strip():
            result = answer(model, tokenizer, question.value, context, max_length=max_length)
            if result["text"]:
                s, e = result["start"], result["start"] + len(result["text"])
                text = (html.escape(context[:s]) + "<mark><b>" + html.escape(context[s:e]) +
                        "</b></mark>" + html.escape(context[e:]))
                note = f"<p><b>answer:</b> {html.escape(result['text'])} " \
                       f"(score {result['score']:.2f}, no-answer {result['null_score']:.2f})</p>"
            else:
                note = "<p><b>answer:</b> <i>no answer in this passage</i></p>"
        shown.value = note + f"<div style='max-height:260px;overflow:auto'>{text}</div>"

    choose.observe(render, names="value")
    question.observe(render, names="value")
    render()
    return widgets.VBox([choose, question, shown])


# -------------------------------------------------------------- command line
QA_STRATEGIES = ("full", "layerwise", "lora")


def _option(args, name: str):
    value = getattr(args, name, None)
    return DEFAULTS[name] if value is None else value


def _check_options(epochs, lr, batch_size, max_length, stride) -> None:
    """Numbers that cannot work, caught before any file is read or model loaded."""
    if not (math.isfinite(epochs) and epochs > 0):
        raise CourseError(f"--epochs {epochs}: must be a positive number")
    if not (math.isfinite(lr) and 0 < lr < 1):
        raise CourseError(f"--lr {lr}: must be between 0 and 1 (e.g. 2e-4)")
    if batch_size < 1:
        raise CourseError(f"--batch-size {batch_size}: must be at least 1")
    if not 32 <= max_length <= 512:
        raise CourseError(f"--max-length {max_length}: must be between 32 and 512 tokens "
                          "for BERT")
    if stride is not None and not 0 <= stride < max_length // 2:
        raise CourseError(f"--doc-stride {stride}: must be between 0 and half of "
                          f"--max-length ({max_length // 2 - 1})")


def _strategy_plan(model, name: str, seed: int, lr: float):
    """Apply a fine-tuning strategy from :mod:`course_lib.strategies` to a QA model.

    ``full`` and ``layerwise`` work as for classification. For ``lora`` the QA head
    (``qa_outputs``, two numbers per token) trains fully next to the low-rank
    updates and stays in the merged model. Bottleneck adapters are not offered:
    they cannot be merged, and their saved model type is a classifier.
    """
    from . import strategies

    if name not in QA_STRATEGIES:
        raise CourseError(f"--strategy {name}: not available for qa; choose one of "
                          f"{', '.join(QA_STRATEGIES)}")
    options = {"lr": lr} if name == "layerwise" else {}
    if name == "lora":
        options["train_pooler"] = False
    plan = strategies.apply_strategy(model, name, seed=seed, **options)
    if name == "lora":
        inner = plan.model.get_base_model()
        strategies.set_trainable(strategies.head_parameters(inner), True)
        plan.trainable, plan.total = strategies._count_peft(plan.model)
    return plan


def _write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def run_qa_command(args) -> dict:
    """``python -m course_lib qa``: train on ``args.train``, score on ``args.eval``, save.

    Everything a user can get wrong (a missing file, malformed SQuAD, an answer not
    at its ``answer_start``, a bad option) is checked *before* training, so a bad
    run never replaces a good ``model/``. The eval file is scored once at the end
    and never used to pick an epoch, so its scores are a fair test. A SQuAD 2.0
    training file (questions without an answer) lets the model answer "no answer".
    Writes ``DIR/metrics.json`` and ``DIR/model/`` (loadable by
    ``transformers.pipeline("question-answering")``) and returns the metrics.
    """
    from . import backbones
    from .data import parse_squad
    from .metrics import squad_scores
    from .training import Trainer, TrainingConfig

    strategy = str(_option(args, "strategy"))
    lr_default = DEFAULTS["lr"] if strategy == "full" else _strategy_lr(strategy)
    lr = float(lr_default if getattr(args, "lr", None) is None else args.lr)
    epochs = float(_option(args, "epochs"))
    batch_size, max_length = int(_option(args, "batch_size")), int(_option(args, "max_length"))
    seed, stride = int(_option(args, "seed")), getattr(args, "doc_stride", None)
    _check_options(epochs, lr, batch_size, max_length, stride)
    if strategy not in QA_STRATEGIES:
        raise CourseError(f"--strategy {strategy}: not available for qa; choose one of "
                          f"{', '.join(QA_STRATEGIES)}")
    if not getattr(args, "output_dir", None):
        raise CourseError("--output-dir is required")
    train_records, _ = parse_squad(Path(args.train))
    eval_records, _ = parse_squad(Path(args.eval))
    out_dir = Path(args.output_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise CourseError(f"--output-dir {out_dir}: exists and is not a folder")
    allow_null = any(not r["answers"]["text"] for r in train_records)

    _quiet_transformers()
    name = getattr(args, "model", None)
    tokenizer = backbones.load_tokenizer(name)
    train_features = prepare_features(train_records, tokenizer, max_length, stride)
    eval_features = prepare_features(eval_records, tokenizer, max_length, stride, labels=False)
    model = backbones.load_model("qa", name, seed=seed)
    limit = getattr(model.config, "max_position_embeddings", 512)
    if max_length > limit:
        raise CourseError(f"--max-length {max_length}: this model reads at most {limit} tokens")
    plan = _strategy_plan(model, strategy, seed, lr)
    print(f"train: {len(train_records)} questions -> {len(train_features)} windows of "
          f"{max_length} tokens (stride {train_features.stride}); eval: {len(eval_records)} "
          f"questions -> {len(eval_features)} windows; {plan.summary()}", flush=True)

    # final weights, no epoch picked on the eval file (it is the test set here)
    config = TrainingConfig(learning_rate=lr, epochs=epochs, batch_size=batch_size, seed=seed,
                            eval_every=None, load_best_at_end=False, save_every=None)
    trainer = Trainer(plan.model, config, train_dataset=train_features.dataset,
                      tokenizer=tokenizer, param_groups=plan.param_groups,
                      callbacks=plan.callbacks)
    history = trainer.train()
    start, end = predict_logits(trainer.unwrapped_model, eval_features)
    predictions = postprocess(eval_features, start, end, allow_null=allow_null)
    scores = squad_scores(texts(predictions), gold_answers(eval_records))

    metrics = {"exact_match": round(scores["exact_match"], 2), "f1": round(scores["f1"], 2),
               "train_seconds": round(history.train_seconds, 1),
               "trainable_params": plan.trainable, "total_params": plan.total,
               "strategy": strategy, "model": backbones.describe(name),
               "train_examples": len(train_records), "eval_examples": len(eval_records),
               "train_windows": len(train_features), "eval_windows": len(eval_features),
               "no_answer_allowed": allow_null, "epochs": epochs, "lr": lr,
               "batch_size": batch_size, "max_length": max_length,
               "doc_stride": train_features.stride, "seed": seed}
    _save(args, plan, tokenizer, metrics)
    print(f"exact match {metrics['exact_match']:.2f}  F1 {metrics['f1']:.2f}  train "
          f"{metrics['train_seconds']:.0f} s -> {out_dir / 'metrics.json'}, {out_dir / 'model'}/")
    return metrics


def _strategy_lr(strategy: str) -> float:
    from . import strategies

    return strategies.RECOMMENDED_LR.get(strategy, DEFAULTS["lr"])


def _quiet_transformers() -> None:
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


def _save(args, plan, tokenizer, metrics: dict) -> None:
    """``model/`` written atomically with a model card, then ``metrics.json``.

    The card and metrics writers come from :mod:`course_lib.cli` (shared with
    ``classify``); plain JSON is the fallback when it is not there.
    """
    import shlex

    try:
        from .cli import write_metrics, write_model_card
    except ImportError:
        write_metrics = write_model_card = None
    out_dir = Path(args.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    argv = getattr(args, "argv", None)
    card = {"task": "question-answering", "title": "Extractive question answering (SQuAD)",
            "base_model": metrics["model"], "strategy": metrics["strategy"],
            "train_file": args.train, "eval_file": args.eval,
            "train_examples": metrics["train_examples"],
            "eval_examples": metrics["eval_examples"],
            "metrics": {"exact match": metrics["exact_match"], "F1": metrics["f1"]},
            "hyperparameters": {k: metrics[k] for k in ("lr", "epochs", "batch_size",
                                                        "max_length", "doc_stride", "seed")},
            "command": shlex.join(["python", "-m", "course_lib", *argv]) if argv else None,
            "model_path": str(out_dir / "model"),
            "notes": ["", "transformers 5 removed its own question-answering pipeline: run "
                      "`import course_lib.qa` first, which registers the course's extractive "
                      "reader under that name.",
                      "", "Trained on SQuAD 2.0 data: with `handle_impossible_answer=True` it may "
                      "answer \"\" (no answer)." if metrics["no_answer_allowed"] else
                      "Trained on SQuAD 1.1-style data: it always returns some span."]}

    def extra(tmp: Path) -> None:
        if write_model_card is not None:
            write_model_card(tmp, card)

    plan.save(out_dir / "model", tokenizer, extra=extra)
    if write_metrics is not None:
        write_metrics(out_dir, metrics)
    else:
        _write_json(out_dir / "metrics.json", metrics)


__all__ = ["QAFeatures", "prepare_features", "token_span", "answer_char_span", "postprocess",
           "training_windows", "texts", "gold_answers", "gold_logits", "score", "squad_metrics", "predict_logits",
           "answer", "where_is_answer", "error_table", "overlap_baseline", "ask_widget",
           "run_qa_command", "DEFAULTS", "QuestionAnsweringPipeline",
           "register_pipeline"]
