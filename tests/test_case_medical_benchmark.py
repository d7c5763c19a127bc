"""benchmarks/case_medical.py without training: folds, files, tables, and the skip."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import case_medical  # noqa: E402

sys.path.pop(0)

NAMES = ["neoplasms", "digestive system diseases", "nervous system diseases",
         "cardiovascular diseases", "general pathological conditions"]
SIZES = {1: 8, 2: 4, 3: 5, 4: 7, 5: 11}  # digestive (2) the smallest, as in the corpus


@pytest.fixture
def data_dir(tmp_path):
    """A synthetic ``medical_abstracts/medical_tc_part_a.csv``, plus one abstract filed
    under two conditions (the corpus has such pairs; the benchmark drops both copies)."""
    folder = tmp_path / "shared" / "medical_abstracts"
    folder.mkdir(parents=True)
    rows = [(label, f"Abstract {label}-{i} about condition {label}, case {i}.")
            for label, n in SIZES.items() for i in range(n)]
    rows += [(1, "An abstract filed twice."), (5, "An abstract filed twice.")]
    with open(folder / "medical_tc_part_a.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["condition_label", "medical_abstract"])
        writer.writerows(rows)
    return tmp_path / "shared"


def _read(path):
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_folds_are_stratified_disjoint_and_written_as_classify_reads_them(data_dir, tmp_path):
    records, source = case_medical.read_abstracts(data_dir / case_medical.FILE)
    assert (source["read"], source["conflicting_labels"], source["kept"]) == (37, 2, 35)
    labels = [r["label"] for r in records]
    folds = case_medical.fold_indices(labels, 3)
    assert folds == case_medical.fold_indices(labels, 3)  # fixed seed
    tests = [set(test) for _, test in folds]
    assert set().union(*tests) == set(range(len(records))) and sum(map(len, tests)) == 35
    for train, test in folds:
        assert not set(train) & set(test)
        assert set(labels[i] for i in test) == set(NAMES)  # every class in every test fold

    files = case_medical.write_fold(records, *folds[0], tmp_path / "fold0")
    written = {part: _read(path) for part, path in files.items()}
    assert [r["text"] for r in written["test"]] == [records[i]["text"] for i in folds[0][1]]
    assert {r["label"] for r in written["train"]} == set(NAMES)  # names, not 1-5
    from course_lib.data.tables import load_examples

    assert len(load_examples(files["train"], "text", "label")) == len(folds[0][0])

    fit, held = case_medical.validation_indices([labels[i] for i in folds[0][0]])
    assert not set(fit) & set(held) and len(fit) + len(held) == len(folds[0][0])

    over = case_medical.write_fold(records, *folds[0], tmp_path / "over", "oversample")
    counts = Counter(r["label"] for r in _read(over["train"]))
    assert len(set(counts.values())) == 1  # every class as large as the largest
    assert _read(over["test"]) == written["test"]  # the test part is never resampled


def _fake_metrics(train: Path, test: Path, wall: float) -> dict:
    labels = [r["label"] for r in _read(test)]
    right = sum(label != "nervous system diseases" for label in labels) / len(labels)
    return {"accuracy": right, "macro_f1": right - 0.1, "strategy": "layerwise", "epochs": 2,
            "lr": 3e-4, "batch_size": 32, "model": "MiniLM", "train_examples": len(_read(train)),
            "eval_examples": len(labels), "train_seconds": 10.0, "wall_seconds": wall,
            "report": {n: {"f1-score": 0.5} for n in NAMES}}


def test_run_writes_the_table_with_the_anchor(data_dir, tmp_path, monkeypatch):
    """The whole script with classify replaced by a stub: 3 folds, then the table."""
    calls = []  # (training texts, test texts) of each classify run

    def fake_run_cli(cli, output_dir, fresh, log):
        train, test = Path(cli[cli.index("--train") + 1]), Path(cli[cli.index("--eval") + 1])
        calls.append(({r["text"] for r in _read(train)}, {r["text"] for r in _read(test)}))
        metrics = _fake_metrics(train, test, 20.0 + len(calls))
        metrics["macro_f1"] += 0.01 * (cli[cli.index("--long-text") + 1] == "head+tail")
        return metrics

    monkeypatch.setattr(case_medical, "RESULTS", tmp_path / "results")
    monkeypatch.setattr(case_medical, "run_cli", fake_run_cli)
    monkeypatch.setattr(case_medical, "token_lengths", lambda texts, model: {
        str(n): {"median_tokens": 12.0, "max_tokens": 20, "truncated_share": 0.0}
        for n in (128, 256, 512)})
    options = ["--data-dir", str(data_dir), "--work-dir", str(tmp_path / "work"),
               "--imbalance", "none", "--long-text", "chunks", "--epochs", "2"]
    assert case_medical.main([*options, "--folds", "3"]) == 0
    assert all(not train & test for train, test in calls)  # never one abstract on both sides
    assert len(set().union(*(test for _, test in calls))) == 35  # every abstract tested once

    payload = json.loads((tmp_path / "results" / "case_medical.json").read_text())
    (summary,) = payload["summary"]
    assert summary["folds_run"] == 3 and summary["wall_seconds_total"] == 21 + 22 + 23
    f1 = [r["macro_f1"] for r in payload["folds"]]
    assert summary["macro_f1_mean"] == pytest.approx(sum(f1) / 3)
    table = (tmp_path / "results" / "case_medical.md").read_text()
    assert f"{summary['macro_f1_mean']:.3f} ± {summary['macro_f1_sd']:.3f}" in table
    assert "| 0.638 |" in table and "11,550" in table  # the anchor beside the result
    assert "2 dropped (filed under two conditions), 35 kept" in table

    # one fold again (a rerun replaces its row), then a validation comparison
    assert case_medical.main([*options, "--folds", "3", "--only-fold", "1"]) == 0
    assert len(json.loads((tmp_path / "results" / "case_medical.json").read_text())["folds"]) == 3
    assert case_medical.main([*options, "--folds", "3", "--validate", "head,head+tail"]) == 0
    payload = json.loads((tmp_path / "results" / "case_medical.json").read_text())
    row, _ = payload["validation"]
    fold0 = next(r for r in payload["folds"] if r["fold"] == 0)
    assert row["train_examples"] + row["test_examples"] == fold0["train_examples"]
    for fit, validate in calls[-2:]:
        assert not (fit | validate) & calls[0][1]  # fold 0's test part is never read
    assert "Best on validation: layerwise, head+tail, len 128" in (
        tmp_path / "results" / "case_medical.md").read_text()


def test_skips_cleanly_without_the_shared_folder(tmp_path):
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "case_medical.py"),
                           "--data-dir", str(tmp_path / "absent")],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("skipped: no Medical Abstracts file"), done.stdout
    assert "Traceback" not in done.stderr
