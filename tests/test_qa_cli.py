"""``python -m course_lib qa``: bad input ends in one clear line and a non-zero exit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CONTEXT = "The drug lowered systolic pressure by 12 mmHg. Headache was the most common effect."

def squad(answer_start: int = CONTEXT.index("12 mmHg")) -> dict:
    return {"version": "v2.0", "data": [{"title": "trial", "paragraphs": [{
        "context": CONTEXT,
        "qas": [{"id": "1", "question": "By how much did pressure fall?",
                 "answers": [{"text": "12 mmHg", "answer_start": answer_start}]},
                {"id": "2", "question": "What was the most common effect?",
                 "answers": [{"text": "Headache", "answer_start": CONTEXT.index("Headache")}]},
                {"id": "3", "question": "Who paid?", "answers": [], "is_impossible": True}]}]}]}


def run_qa(tmp_path: Path, train: Path, eval_: Path, *extra: str):
    env = {**os.environ, "COURSE_PROFILE": "quick", "COURSE_PROGRESS": "0",
           "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "course_lib", "qa", "--train", str(train), "--eval",
               str(eval_), "--output-dir", str(tmp_path / "out"), *extra]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600)


@pytest.fixture
def files(tmp_path):
    good = tmp_path / "good.json"
    good.write_text(json.dumps(squad()))
    malformed = tmp_path / "malformed.json"
    malformed.write_text(json.dumps(squad())[:-7])
    no_data = tmp_path / "no_data.json"
    no_data.write_text(json.dumps({"version": "v2.0", "articles": []}))
    shifted = tmp_path / "shifted.json"
    shifted.write_text(json.dumps(squad(answer_start=3)))
    return {"good": good, "malformed": malformed, "no_data": no_data, "shifted": shifted,
            "missing": tmp_path / "does_not_exist.json"}


@pytest.mark.parametrize("which, side, message", [
    ("missing", "train", "file not found"),
    ("missing", "eval", "file not found"),
    ("malformed", "train", "malformed JSON"),
    ("no_data", "eval", "not SQuAD format"),
    ("shifted", "train", "answer_start"),
    ("shifted", "eval", "answer_start"),
])
def test_bad_input_is_one_clear_line(tmp_path, files, which, side, message):
    train = files[which] if side == "train" else files["good"]
    eval_ = files[which] if side == "eval" else files["good"]
    result = run_qa(tmp_path, train, eval_)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr + result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error:") and message in lines[0]
    assert str(files[which].name) in lines[0]  # the line names the file
    assert not (tmp_path / "out" / "model").exists()


def test_qa_command_end_to_end(tmp_path, files, tiny_qa_model):
    result = run_qa(tmp_path, files["good"], files["good"], "--model", str(tiny_qa_model),
                    "--epochs", "1", "--max-length", "64", "--doc-stride", "16")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    recipe = [line for line in result.stdout.splitlines() if line.startswith("recipe:")]
    assert len(recipe) == 1 and recipe[0].startswith("recipe: short contexts (median context")
    assert "every window read" in recipe[0] and "set by you: --max-length, --doc-stride" in recipe[0]
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert {"exact_match", "f1", "train_seconds", "trainable_params", "total_params",
            "strategy", "model", "train_examples"} <= set(metrics)
    assert metrics["train_examples"] == 3 and metrics["doc_stride"] == 16
    card = (tmp_path / "out" / "model" / "README.md").read_text()
    assert "question-answering" in card and "course_lib qa" in card
    from transformers import pipeline

    from course_lib.qa import register_pipeline

    register_pipeline()  # what the model card says to run first
    assert "register_pipeline()" in card
    reader = pipeline("question-answering", model=str(tmp_path / "out" / "model"))
    assert isinstance(reader(question="What fell?", context=CONTEXT)["answer"], str)


def test_bad_strategy_and_stride_are_one_line(tmp_path, files):
    for extra, message in ((["--strategy", "adapters"], "--strategy: invalid choice: 'adapters'"),
                           (["--max-length", "64", "--doc-stride", "40"], "--doc-stride 40")):
        result = run_qa(tmp_path, files["good"], files["good"], *extra)
        assert result.returncode == 2
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and message in lines[0], result.stderr
