"""Reading a reader's mistakes: where answers sit, an error table, a no-learning baseline,
and an "ask a question about this passage" widget."""

from __future__ import annotations

import re

from .features import QAFeatures, answer_char_span, as_records, token_span


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

    from ..metrics import exact_match, token_f1

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
    for r in as_records(examples):
        words = {w for w in re.findall(r"\w+", r["question"].lower()) if w not in _STOP}
        sentences = re.split(r"(?<=[.!?])\s+", r["context"].strip())
        best = max(sentences, key=lambda s: len(words & set(re.findall(r"\w+", s.lower()))))
        out[r["id"]] = best
    return out


def ask_widget(model, tokenizer, passages: dict[str, str], max_length: int = 384,
               **answer_options):
    """"Ask a question about this passage": pick a passage, type a question, see the answer
    highlighted in the text (ipywidgets). ``answer_options`` go to :func:`.reader.answer`
    (e.g. ``max_answer_length``)."""
    import html

    import ipywidgets as widgets

    from .reader import answer

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
            result = answer(model, tokenizer, question.value, context, max_length=max_length,
                            **answer_options)
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
