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
from conftest import ROWS

from course_lib import artifacts, cli
from course_lib.cli import common
from course_lib.settings import REPO_DIR


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


def _one_error_line(capsys) -> str:
    """The single ``error:`` line on stderr (``note:`` lines about the data may precede it)."""
    err = [line for line in capsys.readouterr().err.splitlines()
           if line.strip() and not line.startswith("note: ")]
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


def test_bad_numbers_and_missing_arguments(tmp_path, capsys):
    good = write_csv(tmp_path / "good.csv", ROWS)
    assert cli.main(classify_args(good, good, tmp_path / "o", "--lr", "-1")) == 2
    assert "--lr -1.0: must be between 0 and 1" in _one_error_line(capsys)
    assert cli.main(classify_args(good, good, tmp_path / "o", "--epochs", "0")) == 2
    assert cli.main(classify_args(good, tmp_path, tmp_path / "o")) == 2  # a folder
    capsys.readouterr()
    assert cli.main(classify_args(good, good, tmp_path / "o", "--save-every", "0")) == 2
    assert "--save-every 0: must be at least 1 step" in _one_error_line(capsys)


def test_the_command_line_leaves_the_process_group(tmp_path, capsys):
    """Under torchrun, gloo's threads left to Python's shutdown aborted a finished run once."""
    import torch.distributed as dist

    good = write_csv(tmp_path / "good.csv", ROWS)
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0,
                            world_size=1)
    try:
        assert cli.main(classify_args(good, good, tmp_path / "o", "--lr", "-1")) == 2
        assert not dist.is_initialized()
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def test_argparse_errors_are_one_line(tmp_path, capsys):
    """Regression (issue 14 item 14): argparse printed its usage block, then the error."""
    good = write_csv(tmp_path / "good.csv", ROWS)
    for argv, expected in (
            (["classify", "--train", str(good)], "the following arguments are required: --eval"),
            (["classify", "--strategy", "big"], "argument --strategy: invalid choice: 'big'"),
            (["nonsense"], "argument COMMAND: invalid choice: 'nonsense'"),
            ([], "the following arguments are required: COMMAND")):
        with pytest.raises(SystemExit) as stop:
            cli.main(argv)
        assert stop.value.code == 2
        line = _one_error_line(capsys)
        assert expected in line and "--help" in line, line


@pytest.mark.parametrize("seed, message", [("-1", "-1 is out of range (a seed is 0..4294967295)"),
                                           (str(2**32), f"{2**32} is out of range"),
                                           ("1.5", "'1.5' is not a whole number")])
def test_seed_out_of_range_is_one_clear_line(tmp_path, capsys, seed, message):
    """Regression (issue 14 item 14): ``--seed -1`` ended in "unexpected ValueError"."""
    good = write_csv(tmp_path / "good.csv", ROWS)
    with pytest.raises(SystemExit) as stop:
        cli.main(classify_args(good, good, tmp_path / "o", "--seed", seed))
    assert stop.value.code == 2
    assert f"argument --seed: {message}" in _one_error_line(capsys)
    assert common.seed_value(str(2**32 - 1)) == 2**32 - 1


def test_max_length_has_one_rule_for_classify_and_qa(tmp_path, capsys, tiny_model_dir):
    """Regression (issue 14 item 14): classify allowed >= 8 tokens, qa 32-512. Now both:
    at least 32, at most what the model reads, said before any weights load."""
    good = write_csv(tmp_path / "good.csv", ROWS)
    squad = tmp_path / "s.json"
    squad.write_text('{"data": []}')
    for argv in (classify_args(good, good, tmp_path / "o", "--max-length", "16"),
                 ["qa", "--train", str(squad), "--eval", str(squad), "--output-dir",
                  str(tmp_path / "q"), "--max-length", "16"]):
        assert cli.main(argv) == 2
        assert "--max-length 16: must be at least 32 tokens" in _one_error_line(capsys)
    assert cli.main(classify_args(good, good, tmp_path / "o", "--max-length", "200",
                                  "--model", str(tiny_model_dir))) == 2
    assert "--max-length 200: this model reads at most 128 tokens" in _one_error_line(capsys)
    assert not (tmp_path / "o" / "model").exists()


def test_an_interrupted_run_is_not_overwritten_without_resume(tmp_path, capsys, monkeypatch):
    """A folder that holds checkpoints of an unfinished run: one line, before any model
    loads (no backbone may be touched), unless --resume says to continue it."""
    good = write_csv(tmp_path / "good.csv", ROWS)
    out = tmp_path / "run"
    (out / "checkpoints" / "step-0000004").mkdir(parents=True)
    monkeypatch.setattr("course_lib.backbones.load_model", lambda *a, **k: pytest.fail("loaded"))
    assert cli.main(classify_args(good, good, out)) == 2
    line = _one_error_line(capsys)
    assert f"{out} holds an interrupted run: add --resume to continue it, or remove " \
        f"{out / 'checkpoints'}" in line


def test_help_lists_the_commands_without_loading_torch():
    """``--help`` answers at once: command modules import torch/transformers only in run()."""
    code = ("import sys; from course_lib import cli; parser = cli.build_parser(); "
            "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))")
    env = {**os.environ, "PYTHONPATH": str(REPO_DIR)}
    done = subprocess.run([sys.executable, "-c", code], env=env, text=True,
                          capture_output=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stderr
    helped = run_cli("--help", cwd=REPO_DIR)
    assert helped.returncode == 0
    for name in cli.available_commands():
        assert name in helped.stdout
    assert {"classify", "qa"} <= set(cli.available_commands())


@pytest.mark.parametrize("command", cli.COMMANDS)
def test_every_command_prints_its_help(command, capsys):
    """argparse formats help strings with ``%``: a literal percent sign in a help text
    (``10%``) crashes ``--help`` with a TypeError, which only shows when help is printed."""
    with pytest.raises(SystemExit) as stopped:
        cli.build_parser().parse_args([command, "--help"])
    assert stopped.value.code == 0
    assert "usage:" in capsys.readouterr().out


def test_commands_not_yet_written_are_left_out(monkeypatch):
    real = cli.importlib.util.find_spec
    monkeypatch.setattr(cli.importlib.util, "find_spec",
                        lambda name: None if name.endswith((".qa", ".export")) else real(name))
    assert "qa" not in cli.available_commands()
    parser = cli.build_parser()
    assert parser.parse_args(classify_args(Path("a"), Path("b"), Path("c"))).command == "classify"


# -------------------------------------------------------------- writing files
def test_write_metrics_and_model_card(tmp_path):
    path = artifacts.write_metrics(tmp_path, {"accuracy": 0.5, "strategy": "full"})
    assert json.loads(path.read_text())["accuracy"] == 0.5
    card = artifacts.write_model_card(tmp_path, {"task": "question-answering", "strategy": "lora",
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


@pytest.mark.parametrize("long_text", ["head+tail", "chunks"])
def test_long_texts_are_read_the_chosen_way(tmp_path, tiny_model_dir, capsys, long_text):
    """``--long-text``: scores are per text (a chunked text's windows pooled into one
    prediction), and the choice is recorded in metrics.json."""
    rows = [(" ".join([text] * 8), label) for text, label in ROWS]  # ~70 tokens each
    train = write_csv(tmp_path / "long.csv", rows)
    out = tmp_path / "run"
    assert cli.main(classify_args(train, train, out, "--strategy", "full", "--model",
                                  str(tiny_model_dir), "--epochs", "1", "--max-length", "32",
                                  "--long-text", long_text)) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["long_text"] == long_text
    assert metrics["report"]["macro avg"]["support"] == len(ROWS)
    if long_text == "chunks":
        assert f"{len(ROWS)} texts read as" in capsys.readouterr().err


def test_long_text_modes_need_single_texts(tmp_path, capsys):
    pairs = write_csv(tmp_path / "pairs.csv", [(t, "Helsinki.", lab) for t, lab in ROWS],
                      header=("sentence", "context", "label"))
    assert cli.main(classify_args(pairs, pairs, tmp_path / "o", "--text-pair-column", "context",
                                  "--long-text", "chunks")) == 2
    assert "--long-text chunks reads single texts" in _one_error_line(capsys)


def test_calibration_is_fitted_on_held_out_training_rows_and_stored(tmp_path, tiny_model_dir):
    """Issue 17: classify fits temperature and decision offsets on a validation split (never
    the eval file), reports the calibration error before and after, and stores
    model/calibration.json for predict; --class-weights balanced trains with a weighted loss."""
    train = write_csv(tmp_path / "train.csv", ROWS * 5)  # 30 rows: 10% = 3 held out, one per class
    evaluation = write_csv(tmp_path / "eval.csv", ROWS[:3])
    out = tmp_path / "run"
    assert cli.main(classify_args(train, evaluation, out, "--model", str(tiny_model_dir),
                                  "--epochs", "1", "--batch-size", "8",
                                  "--class-weights", "balanced")) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["train_examples"] == 27 and metrics["validation_examples"] == 3
    assert metrics["class_weights"] == "balanced"
    calibration = metrics["calibration"]
    assert "held out" in calibration["fitted_on"] and calibration["temperature"] > 0
    for key in ("ece_before", "ece_after"):
        assert 0 <= calibration["eval"][key] <= 1
    stored = json.loads((out / "model" / "calibration.json").read_text())
    assert stored["temperature"] == calibration["temperature"]


def test_a_validation_file_replaces_the_held_out_share(tmp_path, tiny_model_dir):
    train = write_csv(tmp_path / "train.csv", ROWS * 2)
    validation = write_csv(tmp_path / "val.csv", ROWS)
    evaluation = write_csv(tmp_path / "eval.csv", ROWS[:3])
    out = tmp_path / "run"
    assert cli.main(classify_args(train, evaluation, out, "--model", str(tiny_model_dir),
                                  "--epochs", "1", "--validation", str(validation))) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["train_examples"] == 12 and metrics["validation_examples"] == 6
    assert metrics["calibration"]["fitted_on"].startswith("val.csv")
