"""``python -m course_lib classify``: file formats, bad input, and a tiny end-to-end run.

Bad input is checked through a real subprocess (exit status, one line on stderr, no
traceback); the training runs use a tiny random BERT (2 layers, 32 wide) that
shares the packaged backbone's tokenizer, so they take seconds.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from course_lib import cli
from course_lib.settings import REPO_DIR, CourseError

ROWS = [("Profits rose sharply in the quarter.", "positive"),
        ("The company cut its full-year outlook.", "negative"),
        ("The annual meeting is held on Tuesday.", "neutral"),
        ("Sales grew by a fifth on strong demand.", "positive"),
        ("Losses widened as orders dried up.", "negative"),
        ("The firm employs 300 people in Finland.", "neutral")]


def write_csv(path: Path, rows, header=("sentence", "label"), delimiter=",") -> Path:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, delimiter=delimiter)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "COURSE_PROGRESS": "0", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": str(REPO_DIR)}
    return subprocess.run([sys.executable, "-m", "course_lib", *args], cwd=cwd, env=env,
                          text=True, capture_output=True, timeout=600)


def classify_args(train: Path, evaluation: Path, out: Path, *extra: str) -> list[str]:
    return ["classify", "--train", str(train), "--eval", str(evaluation), "--text-column",
            "sentence", "--label-column", "label", "--output-dir", str(out), *extra]


# ------------------------------------------------------------- bad input
def _bad_cases(tmp: Path):
    good = write_csv(tmp / "good.csv", ROWS)
    yield "missing file", [tmp / "absent.csv", good], "absent.csv: file not found"
    yield ("missing column", [write_csv(tmp / "cols.csv", ROWS, header=("text", "label")),
                              good], "missing column 'sentence' (found: text, label)")
    yield ("empty text", [write_csv(tmp / "empty.csv", ROWS[:3] + [("  ", "neutral")]), good],
           "row 4: empty text in column 'sentence'")
    yield ("unseen eval label", [good, write_csv(tmp / "new.csv", ROWS[:2] + [("Hm.", "mixed")])],
           "row 3: label 'mixed' never appears in")
    yield ("one class", [write_csv(tmp / "one.csv", [(t, "neutral") for t, _ in ROWS]), good],
           "has only one class ('neutral')")
    latin = tmp / "latin1.csv"
    latin.write_bytes("sentence,label\nOy Caf\u00e9 Ab grew,positive\n".encode("latin-1"))
    yield "undecodable bytes", [latin, good], "not valid UTF-8 text (undecodable byte at offset"


def test_bad_input_ends_with_one_clear_line(tmp_path):
    """Each bad input: exit status 2, one ``error:`` line naming the problem, no traceback,
    and the model folder that was already there is left alone."""
    out = tmp_path / "out"
    (out / "model").mkdir(parents=True)
    (out / "model" / "config.json").write_text('{"good": true}')
    for name, (train, evaluation), expected in _bad_cases(tmp_path):
        done = run_cli(*classify_args(train, evaluation, out), cwd=tmp_path)
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        assert done.returncode == 2, (name, done.stderr)
        assert len(lines) == 1 and lines[0].startswith("error: "), (name, done.stderr)
        assert expected in lines[0], (name, lines[0])
        assert "Traceback" not in done.stderr + done.stdout
    assert (out / "model" / "config.json").read_text() == '{"good": true}'
    assert not (out / "metrics.json").exists()


def test_bad_numbers_and_missing_arguments(tmp_path):
    good = write_csv(tmp_path / "good.csv", ROWS)
    with pytest.raises(SystemExit) as stop:  # argparse: usage + one error line, status 2
        cli.main(["classify", "--train", str(good)])
    assert stop.value.code == 2
    assert cli.main(classify_args(good, good, tmp_path / "o", "--lr", "-1")) == 2
    assert cli.main(classify_args(good, good, tmp_path / "o", "--epochs", "0")) == 2
    assert cli.main(classify_args(good, tmp_path, tmp_path / "o")) == 2  # a folder


def test_qa_without_the_qa_module_says_so(tmp_path, monkeypatch, capsys):
    squad = tmp_path / "s.json"
    squad.write_text('{"data": []}')
    monkeypatch.setattr(cli.importlib.util, "find_spec", lambda name: None)
    assert cli.main(["qa", "--train", str(squad), "--eval", str(squad), "--output-dir",
                     str(tmp_path / "o")]) == 2
    assert "needs course_lib/qa.py" in capsys.readouterr().err


# -------------------------------------------------------------- reading files
def test_read_every_format_with_string_or_int_labels(tmp_path):
    import pandas as pd

    rows = [{"sentence": t, "label": i % 3} for i, (t, _) in enumerate(ROWS)]
    write_csv(tmp_path / "a.csv", [(r["sentence"], r["label"]) for r in rows])
    write_csv(tmp_path / "a.tsv", [(r["sentence"], r["label"]) for r in rows], delimiter="\t")
    (tmp_path / "a.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    pd.DataFrame(rows).to_parquet(tmp_path / "a.parquet")
    for suffix in ("csv", "tsv", "jsonl", "parquet"):
        examples = cli.load_examples(tmp_path / f"a.{suffix}", "sentence", "label")
        assert [e["text"] for e in examples] == [r["sentence"] for r in rows], suffix
        assert [e["label"] for e in examples] == [str(r["label"]) for r in rows], suffix
    assert cli.label_order(["10", "2", "1"]) == ["1", "2", "10"]
    assert cli.label_order(["neutral", "negative"]) == ["negative", "neutral"]


def test_text_pairs_and_file_errors(tmp_path):
    path = tmp_path / "pairs.jsonl"
    path.write_text('{"q": "Is it up?", "s": "Sales rose.", "y": "yes"}\n'
                    '{"q": "Is it down?", "s": "Sales rose.", "y": "no"}\n')
    examples = cli.load_examples(path, "q", "y", pair_column="s")
    assert examples[0] == {"text": "Is it up?", "text_pair": "Sales rose.", "label": "yes"}
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"q": "a", "y": 1}\n{"q": "b", y: 2}\n')
    with pytest.raises(CourseError, match="line 2: not valid JSON"):
        cli.load_examples(bad, "q", "y")
    with pytest.raises(CourseError, match="unknown file type '.xlsx'"):
        cli.read_table(tmp_path / "data.xlsx")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(CourseError, match="the file is empty"):
        cli.read_table(tmp_path / "empty.csv")


def test_write_metrics_and_model_card(tmp_path):
    path = cli.write_metrics(tmp_path, {"accuracy": 0.5, "strategy": "full"})
    assert json.loads(path.read_text())["accuracy"] == 0.5
    card = cli.write_model_card(tmp_path, {"task": "question-answering", "strategy": "lora",
                                           "metrics": {"exact_match": 61.5, "f1": 70.25},
                                           "command": "python -m course_lib qa ..."})
    text = card.read_text()
    assert "pipeline_tag: question-answering" in text and "| f1 | 70.2500 |" in text
    assert "python -m course_lib qa ..." in text


# ---------------------------------------------------------------- training
def _check_run(out: Path, strategy: str, labels: list[str]) -> dict:
    from transformers import pipeline

    import course_lib.strategies  # noqa: F401  (registers the adapter model type)

    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("accuracy", "macro_f1", "report", "train_seconds", "trainable_params",
                "total_params", "strategy", "model", "train_examples"):
        assert key in metrics, key
    assert metrics["strategy"] == strategy and metrics["labels"] == labels
    assert (out / "model" / "README.md").is_file()
    classify = pipeline("text-classification", model=str(out / "model"))
    prediction = classify("Profits rose sharply.")[0]
    assert prediction["label"] in labels
    return metrics


@pytest.mark.slow
def test_end_to_end_subprocess_with_adapters(tmp_path, tiny_model_dir):
    train = tmp_path / "train.jsonl"
    train.write_text("\n".join(json.dumps({"sentence": t, "label": lab}) for t, lab in ROWS * 3))
    evaluation = write_csv(tmp_path / "eval.csv", ROWS[:3])
    out = tmp_path / "run"
    done = run_cli(*classify_args(train, evaluation, out, "--strategy", "adapters", "--model",
                                  str(tiny_model_dir), "--epochs", "1", "--batch-size", "8"),
                   cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "accuracy" in done.stdout
    metrics = _check_run(out, "adapters", ["negative", "neutral", "positive"])
    assert metrics["trainable_params"] < 0.05 * metrics["total_params"]
    assert json.loads((out / "model" / "config.json").read_text())["model_type"] == \
        "course_adapter_bert"


@pytest.mark.parametrize("strategy,suffix", [("full", "tsv"), ("layerwise", "parquet"),
                                             ("lora", "csv")])
def test_each_strategy_writes_a_pipeline_model(tmp_path, tiny_model_dir, strategy, suffix):
    import pandas as pd

    frame = pd.DataFrame([{"sentence": t, "context": "Helsinki stock exchange.",
                           "label": {"negative": 0, "neutral": 1, "positive": 2}[lab]}
                          for t, lab in ROWS])
    pair = ["--text-pair-column", "context"] if suffix == "parquet" else []  # sentence pairs
    train = tmp_path / f"train.{suffix}"
    if suffix == "parquet":
        frame.to_parquet(train)
    else:
        frame.to_csv(train, sep="\t" if suffix == "tsv" else ",", index=False)
    out = tmp_path / "run"
    code = cli.main(classify_args(train, train, out, "--strategy", strategy, "--model",
                                  str(tiny_model_dir), "--epochs", "1", "--max-length", "32",
                                  *pair))
    assert code == 0
    metrics = _check_run(out, strategy, ["0", "1", "2"])
    assert metrics["train_examples"] == len(ROWS) and metrics["max_length"] == 32
    # a second run replaces the model folder whole; nothing is left behind
    assert cli.main(classify_args(train, train, out, "--strategy", strategy, "--model",
                                  str(tiny_model_dir), "--epochs", "1")) == 0
    assert sorted(p.name for p in out.iterdir()) == ["metrics.json", "model"]
