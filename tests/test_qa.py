"""course_lib.qa on hand-made cases: windows, labels, post-processing, scoring, the qa run."""

from __future__ import annotations

import json
from argparse import Namespace

import numpy as np
import pytest

from course_lib import qa
from course_lib.cli import qa_command
from course_lib.metrics import squad_scores
from course_lib.settings import CourseError

# a passage of short, distinct sentences: long enough for several small windows
SENTENCES = [
    "The trial enrolled patients in four cities.",
    "Nurses measured blood pressure every morning.",
    "The median age of the cohort was 61 years.",
    "Most participants lived in rural districts.",
    "Adverse events were recorded by a separate team.",
    "The primary outcome was stroke within two years.",
    "Secondary outcomes included kidney function and cost.",
    "The drug lowered systolic pressure by 12 mmHg.",
    "Headache was the most common side effect.",
    "The authors called for a longer follow-up study.",
]
CONTEXT = " ".join(SENTENCES)


def example(question, context, answer=None, qid="q1", start=None):
    """A SQuAD record; ``answer`` is found in ``context`` unless ``start`` is given."""
    if answer is None:
        return {"id": qid, "question": question, "context": context,
                "answers": {"text": [], "answer_start": []}}
    start = context.index(answer) if start is None else start
    assert context[start : start + len(answer)] == answer
    return {"id": qid, "question": question, "context": context,
            "answers": {"text": [answer], "answer_start": [start]}}


def roundtrip(features, **kwargs):
    """Post-process the gold labels as if they were logits: must give the gold text back."""
    start, end = qa.gold_logits(features)
    return qa.texts(qa.postprocess(features, start, end, **kwargs))


# ------------------------------------------------------------------ labels
def test_answer_at_the_very_start_and_end_of_the_context(tokenizer):
    records = [example("Where was it?", CONTEXT, "The trial", "first"),
               example("What next?", CONTEXT, "follow-up study.", "last")]
    features = qa.prepare_features(records, tokenizer, max_length=384)
    assert len(features) == 2  # one window each
    first_ctx = features.offsets[0].index((0, 3))  # "The" is the first context token
    assert features.dataset["start_positions"][0] == first_ctx
    last_ctx = max(t for t, o in enumerate(features.offsets[1]) if o is not None)
    assert features.dataset["end_positions"][1] == last_ctx
    assert features.offsets[1][last_ctx][1] == len(CONTEXT)
    assert roundtrip(features) == {"first": "The trial", "last": "follow-up study."}


def test_answer_in_the_third_window(tokenizer):
    answer = "12 mmHg"  # in the eighth sentence
    record = example("By how much did pressure fall?", CONTEXT, answer)
    features = qa.prepare_features([record], tokenizer, max_length=40, stride=8)
    assert len(features) == 4
    assert qa.where_is_answer(features) == {"q1": 2}
    labelled = [i for i, s in enumerate(features.dataset["start_positions"]) if s > 0]
    windows = features.windows_of(0)
    assert windows.index(labelled[0]) == 2  # (window 3 may hold it again: the overlap)
    for w in windows:  # every window without the whole answer points at [CLS]
        if w not in labelled:
            assert features.dataset["start_positions"][w] == 0
            assert features.dataset["end_positions"][w] == 0
    assert roundtrip(features) == {"q1": answer}


def test_answer_split_across_two_windows(tokenizer):
    question = "What was recorded?"
    first = qa.prepare_features([example(question, CONTEXT)], tokenizer, max_length=40,
                                stride=10, labels=False)
    window0 = first.offsets[0]
    last = max(t for t, o in enumerate(window0) if o is not None)
    # an answer from three tokens before the end of window 0 to two tokens past it
    start_char = window0[last - 2][0]
    window1 = first.offsets[1]
    after = [o for o in window1 if o is not None and o[0] >= window0[last][1]]
    end_char = after[1][1]
    answer = CONTEXT[start_char:end_char]
    features = qa.prepare_features([example(question, CONTEXT, answer, start=start_char)],
                                   tokenizer, max_length=40, stride=10)
    starts, ends = features.dataset["start_positions"], features.dataset["end_positions"]
    assert (starts[0], ends[0]) == (0, 0), "window 0 holds only part of the answer"
    assert starts[1] > 0 and ends[1] >= starts[1], "the overlap puts all of it in window 1"
    s, e = starts[1], ends[1]
    assert (features.offsets[1][s][0], features.offsets[1][e][1]) == (start_char, end_char)
    assert roundtrip(features) == {"q1": answer}


def test_stride_is_the_overlap_between_windows(tokenizer):
    features = qa.prepare_features([example("Why?", CONTEXT)], tokenizer, max_length=40,
                                   stride=10, labels=False)
    w0 = [o for o in features.offsets[0] if o is not None]
    w1 = [o for o in features.offsets[1] if o is not None]
    assert w0[-10:] == w1[:10]


def test_unanswerable_question(tokenizer):
    record = example("Who funded the trial?", CONTEXT)  # no answer in the passage
    features = qa.prepare_features([record], tokenizer, max_length=48, stride=12)
    assert len(features) > 1
    assert set(features.dataset["start_positions"]) == {0}
    assert set(features.dataset["end_positions"]) == {0}
    assert roundtrip(features, allow_null=True) == {"q1": ""}
    assert squad_scores(roundtrip(features, allow_null=True), qa.gold_answers([record])) == {
        "exact_match": 100.0, "f1": 100.0}
    # without SQuAD 2.0 handling the reader must always pick some span
    assert roundtrip(features, allow_null=False)["q1"] != ""


def test_unicode_and_extra_spaces_map_back_to_the_original_characters(tokenizer):
    context = ("Café  owners   reported that β-lactamase levels rose to 4.2 µg/mL at 37 °C; "
               "the IL‑6 response (a cytokine)  peaked   on day  3.")
    answers = ["β-lactamase", "4.2 µg/mL", "37 °C", "IL‑6", "Café  owners", "day  3"]
    records = [example(f"Question {i}?", context, a, qid=f"u{i}")
               for i, a in enumerate(answers)]
    features = qa.prepare_features(records, tokenizer, max_length=64, stride=16)
    assert roundtrip(features) == {f"u{i}": a for i, a in enumerate(answers)}


def test_answer_with_surrounding_spaces_is_trimmed(tokenizer):
    context = "The dose was 20 mg daily."
    record = example("What dose?", context, " 20 mg ", start=context.index(" 20 mg "))
    assert qa.answer_char_span(record) == (13, 18)
    features = qa.prepare_features([record], tokenizer, max_length=64)
    assert roundtrip(features) == {"q1": "20 mg"}


def test_max_length_too_small_for_the_question_is_a_clear_error(tokenizer):
    with pytest.raises(CourseError, match="max_length"):
        qa.prepare_features([example("a " * 40 + "?", CONTEXT)], tokenizer, max_length=48,
                            stride=16)


# --------------------------------------------------------- post-processing
def _one_window(tokenizer, record, max_length=96):
    features = qa.prepare_features([record], tokenizer, max_length=max_length, labels=False)
    assert len(features) == 1
    n = len(features.offsets[0])
    return features, np.zeros((1, n)), np.zeros((1, n))


def _token_of(features, char, window=0):
    return next(t for t, o in enumerate(features.offsets[window]) if o and o[0] <= char < o[1])


def test_postprocess_never_answers_from_the_question_or_special_tokens(tokenizer):
    record = example("Which drug lowered pressure?", SENTENCES[7], "12 mmHg")
    features, start, end = _one_window(tokenizer, record)
    start[0, 1:4] = 50.0  # question tokens score highest
    end[0, 1:4] = 50.0
    s = _token_of(features, SENTENCES[7].index("12"))
    e = _token_of(features, SENTENCES[7].index("mmHg") + 3)  # "mm", "##hg"
    start[0, s], end[0, e] = 5.0, 5.0
    assert qa.texts(qa.postprocess(features, start, end)) == {"q1": "12 mmHg"}


def test_postprocess_rejects_end_before_start_and_too_long_spans(tokenizer):
    record = example("What?", SENTENCES[7], "12 mmHg")
    features, start, end = _one_window(tokenizer, record)
    the = _token_of(features, 0)
    drug = _token_of(features, SENTENCES[7].index("drug"))
    mmhg = _token_of(features, SENTENCES[7].index("mmHg") + 3)
    start[0, mmhg], end[0, drug] = 9.0, 9.0  # the two argmaxes: end before start
    start[0, the] = 4.0
    assert qa.postprocess(features, start, end)["q1"]["text"] == "The drug"
    start, end = np.zeros_like(start), np.zeros_like(end)
    start[0, the], end[0, mmhg], end[0, drug] = 4.0, 4.0, 1.0
    long_span = "The drug lowered systolic pressure by 12 mmHg"
    assert qa.postprocess(features, start, end)["q1"]["text"] == long_span
    short = qa.postprocess(features, start, end, max_answer_length=3)
    assert short["q1"]["text"] == "The drug"


def test_null_score_is_the_lowest_over_windows(tokenizer):
    record = example("What was the primary outcome?", CONTEXT, "stroke within two years")
    features = qa.prepare_features([record], tokenizer, max_length=40, stride=8)
    start, end = qa.gold_logits(features, high=5.0)
    out = qa.postprocess(features, start, end, allow_null=True)
    # windows without the answer have null score 10; the answer's window has -10
    assert out["q1"]["null_score"] == pytest.approx(-10.0)
    assert out["q1"]["text"] == "stroke within two years"
    assert out["q1"]["start"] == CONTEXT.index("stroke within")
    # a high threshold makes the reader abstain
    assert qa.postprocess(features, start, end, allow_null=True,
                          null_threshold=-25.0)["q1"]["text"] == ""


def test_postprocess_checks_the_number_of_windows(tokenizer):
    features = qa.prepare_features([example("Why?", CONTEXT)], tokenizer, labels=False)
    with pytest.raises(CourseError, match="windows"):
        qa.postprocess(features, np.zeros((3, 10)), np.zeros((3, 10)))


# ---------------------------------------------------------------- scoring
def test_scores_and_error_table(tokenizer):
    records = [example("Q1?", CONTEXT, "61 years", "a"), example("Q2?", CONTEXT, "12 mmHg", "b"),
               example("Q3?", CONTEXT, "Headache", "c"), example("Q4?", CONTEXT, qid="d"),
               example("Q5?", CONTEXT, "four cities", "e")]
    features = qa.prepare_features(records, tokenizer, max_length=128, stride=32)
    predictions = {"a": "The 61 years", "b": "by 12 mmHg", "c": "", "d": "two years",
                   "e": "rural districts"}
    preds = {k: {"text": v} for k, v in predictions.items()}
    table = qa.error_table(features, preds).set_index("id")
    assert table.loc["a", "category"] == "correct"  # articles do not count
    assert table.loc["b", "category"] == "partial"
    assert table.loc["c", "category"] == "missed"
    assert table.loc["d", "category"] == "false answer"
    assert table.loc["e", "category"] == "wrong span"
    scores = squad_scores(predictions, qa.gold_answers(records))
    assert scores["exact_match"] == pytest.approx(20.0)
    assert scores["f1"] == pytest.approx(100 * (1 + 0.8) / 5)


def test_overlap_baseline_returns_the_most_similar_sentence():
    record = example("How much did the drug lower systolic pressure?", CONTEXT, "12 mmHg")
    assert qa.overlap_baseline([record]) == {"q1": SENTENCES[7]}


# ------------------------------------------------------ inference and a run
@pytest.fixture(scope="module")
def tiny_squad(tmp_path_factory):
    root = tmp_path_factory.mktemp("squad")
    qas = [{"id": "t1", "question": "How much did the drug lower pressure?",
            "answers": [{"text": "12 mmHg", "answer_start": CONTEXT.index("12 mmHg")}]},
           {"id": "t2", "question": "What was the median age?",
            "answers": [{"text": "61 years", "answer_start": CONTEXT.index("61 years")}]},
           {"id": "t3", "question": "Who paid for the trial?", "answers": [],
            "is_impossible": True}]
    squad = {"version": "v2.0", "data": [{"title": "trial", "paragraphs": [
        {"context": CONTEXT, "qas": qas}]}]}
    path = root / "train.json"
    path.write_text(json.dumps(squad))
    return path


def _args(train, eval_, out, **overrides):
    values = dict(train=train, eval=eval_, model=None, epochs=1, lr=1e-3, batch_size=8,
                  max_length=64, doc_stride=16, seed=0, strategy="full", output_dir=out,
                  negative_share=None, top_k=None, retriever=None, save_every=None,
                  resume=False)
    values.update(overrides)
    return Namespace(**values)


def test_predict_logits_batches_every_window_in_order(tiny_qa_model, tokenizer):
    from transformers import AutoModelForQuestionAnswering

    model = AutoModelForQuestionAnswering.from_pretrained(tiny_qa_model)
    records = [example("What was the median age?", CONTEXT, "61 years", "a"),
               example("Who?", SENTENCES[0], "The trial", "b")]
    features = qa.prepare_features(records, tokenizer, max_length=48, stride=12, labels=False)
    start, end = qa.predict_logits(model, features, batch_size=3)
    assert len(start) == len(end) == len(features)
    # each window comes back at its own length: nothing padded to mask out
    assert [len(s) for s in start] == [len(o) for o in features.offsets]
    import torch

    with torch.no_grad():  # the last window alone gives the same scores as in the batch
        last = len(features) - 1
        one = model(**{k: torch.tensor([features.dataset[last][k]])
                       for k in ("input_ids", "token_type_ids", "attention_mask")})
    np.testing.assert_allclose(start[last], one.start_logits[0].numpy(), atol=1e-4)
    # ragged rows and a padded array post-process to the same answers
    width = max(len(s) for s in start)
    padded = [np.pad(s, (0, width - len(s)), constant_values=-1e4) for s in start]
    padded_end = [np.pad(e, (0, width - len(e)), constant_values=-1e4) for e in end]
    assert qa.texts(qa.postprocess(features, start, end)) == qa.texts(
        qa.postprocess(features, np.stack(padded), np.stack(padded_end)))
    assert qa.answer(model, tokenizer, "Who?", SENTENCES[0], max_length=48)["text"] is not None


def test_predict_logits_goes_through_the_one_inference_runner(tiny_qa_model, tokenizer,
                                                              monkeypatch):
    """Issue 14: one batched, length-sorted runner; QA asks it for per-window sequences."""
    from transformers import AutoModelForQuestionAnswering

    from course_lib import training

    calls = []
    real = training.batched_outputs

    def spy(model, dataset, **kwargs):
        calls.append(kwargs)
        return real(model, dataset, **kwargs)

    monkeypatch.setattr(training, "batched_outputs", spy)
    model = AutoModelForQuestionAnswering.from_pretrained(tiny_qa_model)
    features = qa.prepare_features([example("Who?", CONTEXT)], tokenizer, max_length=48,
                                   stride=12, labels=False)
    qa.predict_logits(model, features)
    assert len(calls) == 1
    assert set(calls[0]["sequence_outputs"]) == {"start_logits", "end_logits"}


def test_question_answering_pipeline_reads_every_window(tiny_qa_model, tokenizer):
    from transformers import AutoModelForQuestionAnswering, pipeline

    qa.register_pipeline()
    reader = pipeline("question-answering", model=str(tiny_qa_model))
    assert isinstance(reader, qa.QuestionAnsweringPipeline)
    result = reader(question="What was the median age?", context=CONTEXT, max_length=48,
                    stride=12)
    model = AutoModelForQuestionAnswering.from_pretrained(tiny_qa_model)
    expected = qa.answer(model, tokenizer, "What was the median age?", CONTEXT, max_length=48,
                         stride=12, allow_null=False)
    assert result["answer"] == expected["text"] != ""
    assert CONTEXT[result["start"] : result["end"]] == result["answer"]
    several = reader([{"question": "Who?", "context": SENTENCES[0]},
                      {"question": "Why?", "context": SENTENCES[1]}])
    assert len(several) == 2 and all(isinstance(r["answer"], str) for r in several)


@pytest.mark.parametrize("strategy", ["full", "layerwise", "lora"])
def test_run_qa_command_writes_metrics_and_a_pipeline_model(tiny_squad, tiny_qa_model,
                                                              tmp_path, strategy):
    from transformers import pipeline

    out = tmp_path / "run"
    metrics = qa_command.run_qa_command(_args(tiny_squad, tiny_squad, out, model=str(tiny_qa_model),
                                      strategy=strategy))
    saved = json.loads((out / "metrics.json").read_text())
    for key in ("exact_match", "f1", "train_seconds", "trainable_params", "total_params",
                "strategy", "model", "train_examples"):
        assert key in saved
    assert saved["train_examples"] == 3 and saved["strategy"] == strategy
    assert saved["no_answer_allowed"] is True  # the training file has an unanswerable question
    if strategy == "lora":
        assert 0 < saved["trainable_params"] < saved["total_params"]
    else:
        assert saved["trainable_params"] == saved["total_params"]
    assert metrics["f1"] == saved["f1"] and 0 <= saved["exact_match"] <= 100
    assert not (out / "model.tmp").exists()
    assert (out / "model" / "README.md").is_file()  # the model card
    assert "register_pipeline()" in (out / "model" / "README.md").read_text()
    qa.register_pipeline()
    reader = pipeline("question-answering", model=str(out / "model"))
    result = reader(question="What was the median age?", context=CONTEXT)
    assert isinstance(result["answer"], str) and 0 <= result["start"] <= len(CONTEXT)


def test_run_qa_command_rejects_adapters(tiny_squad, tmp_path):
    with pytest.raises(CourseError, match="--strategy adapters"):
        qa_command.run_qa_command(_args(tiny_squad, tiny_squad, tmp_path / "out", strategy="adapters"))


@pytest.mark.slow
def test_run_qa_command_with_the_packaged_backbone(tiny_squad, tmp_path):
    out = tmp_path / "run"
    metrics = qa_command.run_qa_command(_args(tiny_squad, tiny_squad, out, lr=1e-4))
    assert metrics["trainable_params"] == metrics["total_params"] > 20_000_000
    assert (out / "model" / "model.safetensors").is_file()


def _broken_files(tmp_path):
    good = {"data": [{"title": "x", "paragraphs": [{"context": "Dose was 20 mg.", "qas": [
        {"id": "1", "question": "Dose?", "answers": [{"text": "20 mg", "answer_start": 9}]}]}]}]}
    shifted = json.loads(json.dumps(good))
    shifted["data"][0]["paragraphs"][0]["qas"][0]["answers"][0]["answer_start"] = 0
    files = {"good.json": json.dumps(good), "malformed.json": '{"data": [ {"title": ',
             "notsquad.json": json.dumps({"rows": []}), "shifted.json": json.dumps(shifted)}
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    return tmp_path


@pytest.mark.parametrize("name, message", [
    ("missing.json", "file not found"), ("malformed.json", "malformed JSON"),
    ("notsquad.json", "not SQuAD format"), ("shifted.json", "answer_start")])
def test_run_qa_command_rejects_bad_input_before_touching_the_model(tmp_path, name, message):
    folder = _broken_files(tmp_path)
    out = tmp_path / "out"
    (out / "model").mkdir(parents=True)
    (out / "model" / "config.json").write_text("{}")  # a previous good model
    for train, eval_ in ((folder / name, folder / "good.json"),
                         (folder / "good.json", folder / name)):
        with pytest.raises(CourseError, match=message):
            qa_command.run_qa_command(_args(train, eval_, out))
    assert (out / "model" / "config.json").read_text() == "{}"
    assert not (out / "metrics.json").exists()


@pytest.mark.parametrize("option, value, message", [
    ("epochs", 0, "--epochs"), ("lr", -1.0, "--lr"), ("batch_size", 0, "--batch-size"),
    ("max_length", 16, "--max-length 16: must be at least 32"),
    ("max_length", 4096, "--max-length 4096: this model reads at most 512 tokens"),
    ("negative_share", 1.5, "--negative-share"), ("top_k", -1, "--top-k"),
    ("doc_stride", 40, "--doc-stride 40")])
def test_run_qa_command_rejects_bad_options(tmp_path, option, value, message):
    folder = _broken_files(tmp_path)
    args = _args(folder / "good.json", folder / "good.json", tmp_path / "out", **{option: value})
    with pytest.raises(CourseError, match=message):
        qa_command.run_qa_command(args)


# ------------------------------------------------- registration, recipe, resume
def test_importing_the_library_leaves_transformers_question_answering_alone():
    """Regression (issue 14 item 13): importing course_lib.qa used to register the
    course's pipeline over transformers' question-answering task. Now only an explicit
    register_pipeline() does."""
    import subprocess
    import sys

    code = ("import course_lib, course_lib.qa, course_lib.cli.qa_command\n"
            "from course_lib.qa import QuestionAnsweringPipeline\n"
            "from transformers import pipelines\n"
            "task = 'question-answering'\n"
            "assert task in pipelines.REMOVED_TASKS, 'import changed REMOVED_TASKS'\n"
            "assert task not in pipelines.PIPELINE_REGISTRY.get_supported_tasks(), 'registered'\n"
            "course_lib.qa.register_pipeline()\n"
            "assert task in pipelines.PIPELINE_REGISTRY.get_supported_tasks()\n"
            "print('ok')\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-1500:]


def test_the_recipe_follows_the_context_length_and_says_why():
    short, line = qa_command.choose_recipe(150.0)
    assert short == qa_command.SHORT and short.top_k == 0 and short.negative_share == 1.0
    assert line.startswith("recipe: short contexts (median context 150 tokens <= 1,000)")
    assert "every window read" in line and "every window trained" in line
    long, line = qa_command.choose_recipe(5194.0)
    assert long == qa_command.LONG
    assert long.top_k > 0 and long.negative_share < 1 and long.max_length <= 384
    assert line.startswith("recipe: long contexts (median context 5,194 tokens > 1,000)")
    assert f"top {long.top_k} windows" in line and "set by you" not in line
    given = Namespace(max_length=128, doc_stride=None, negative_share=None, top_k=0,
                      epochs=None)
    mine, line = qa_command.choose_recipe(5194.0, given)
    assert (mine.max_length, mine.top_k) == (128, 0) and mine.stride <= 128 // 4
    assert "every window read" in line and "set by you: --max-length, --top-k" in line


def test_resume_continues_an_interrupted_qa_run_to_the_same_weights(tiny_squad, tiny_qa_model,
                                                                    tmp_path, monkeypatch):
    """``--save-every 1`` keeps a checkpoint after each step; a run stopped after step 2
    and resumed with ``--resume`` ends with the weights of a run never stopped."""
    from safetensors.torch import load_file

    from course_lib.training import Callback

    options = dict(model=str(tiny_qa_model), epochs=2, batch_size=2, save_every=1)
    whole = tmp_path / "whole"
    qa_command.run_qa_command(_args(tiny_squad, tiny_squad, whole, **options))
    assert not (whole / "checkpoints").exists()  # a finished run keeps only its results

    class StopAfterTwoSteps(Callback):
        def on_step_end(self, trainer, step):
            if step == 2:
                raise KeyboardInterrupt

    real_plan = qa_command._strategy_plan

    def interrupted_plan(*args, **kwargs):
        plan = real_plan(*args, **kwargs)
        plan.callbacks = [*plan.callbacks, StopAfterTwoSteps()]
        return plan

    stopped = tmp_path / "stopped"
    monkeypatch.setattr(qa_command, "_strategy_plan", interrupted_plan)
    with pytest.raises(KeyboardInterrupt):
        qa_command.run_qa_command(_args(tiny_squad, tiny_squad, stopped, **options))
    assert list((stopped / "checkpoints").glob("step-*")) and not (stopped / "model").exists()
    monkeypatch.setattr(qa_command, "_strategy_plan", real_plan)
    metrics = qa_command.run_qa_command(_args(tiny_squad, tiny_squad, stopped, resume=True,
                                              **options))
    a = load_file(str(whole / "model" / "model.safetensors"))
    b = load_file(str(stopped / "model" / "model.safetensors"))
    assert a.keys() == b.keys()
    for key in a:
        assert np.allclose(a[key].numpy(), b[key].numpy(), atol=1e-6), key
    assert metrics == json.loads((stopped / "metrics.json").read_text())
    assert not (stopped / "checkpoints").exists()


def test_long_contexts_get_the_long_recipe_end_to_end(tiny_qa_model, tmp_path, capsys):
    """Articles of thousands of tokens: fewer windows train, retrieval picks what is read."""
    from test_longdocs import long_article_squad

    train = long_article_squad(tmp_path / "train.json", seed=0)
    test = long_article_squad(tmp_path / "test.json", seed=1)
    metrics = qa_command.run_qa_command(_args(train, test, tmp_path / "run",
                                              model=str(tiny_qa_model), max_length=128,
                                              doc_stride=None))
    printed = capsys.readouterr().out
    assert printed.startswith("recipe: long contexts (median context")
    assert "set by you: --max-length, --epochs" in printed.splitlines()[0]
    assert metrics["recipe"] == "long contexts" and metrics["top_k"] == qa_command.LONG.top_k
    assert metrics["train_windows"] < metrics["all_train_windows"]
    assert metrics["eval_windows_read"] <= metrics["top_k"] * metrics["eval_examples"]
    assert metrics["eval_windows_read"] < metrics["eval_windows"]
    assert 0 <= metrics["retrieval_recall"] <= 1 and metrics["retrieval_seconds"] >= 0
