"""course_lib.data.tables: the one reader (and writer) of CSV / TSV / JSON Lines / Parquet.

The command line's ``classify`` and ``predict`` and the dataset parsers read tables
here; the tests below pin what a learner's real files contain: quoted line breaks,
odd Unicode separators, rows missing a column, labels typed several ways.
"""

from __future__ import annotations

import csv
import json
import unicodedata
from pathlib import Path

import pytest
from conftest import ROWS

from course_lib import data
from course_lib.data import tables
from course_lib.settings import CourseError

# texts that str.splitlines() would cut: a quoted line break, a form feed, a Unicode
# line separator, a paragraph separator, a vertical tab, a next-line character
ODD_TEXTS = ["Line one\nline two of the same abstract.", "Page one\x0cpage two.",
             "Before\u2028after the separator.", "Para\u2029graph.", "Tab\x0bbed.",
             "Next\x85line."]


def write_csv(path: Path, rows, header=("sentence", "label"), delimiter=",") -> Path:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, delimiter=delimiter)
        writer.writerow(header)
        writer.writerows(rows)
    return path


# ------------------------------------------------------------------ one reader (issue 14, item 11)
def test_csv_rows_keep_quoted_line_breaks_and_unicode_separators(tmp_path):
    rows = [(text, "positive") for text in ODD_TEXTS]
    path = write_csv(tmp_path / "odd.csv", rows)
    assert [r["sentence"] for r in data.read_table(path)] == ODD_TEXTS
    tsv = write_csv(tmp_path / "odd.tsv", rows, delimiter="\t")
    assert [r["sentence"] for r in data.read_table(tsv)] == ODD_TEXTS


def test_dataset_parsers_use_the_same_reader(tmp_path):
    """The loaders' old reader (str.splitlines) glued quoted lines and split rows at \\x0c."""
    path = write_csv(tmp_path / "medical_tc_train.csv",
                     [(i % 5 + 1, text) for i, text in enumerate(ODD_TEXTS)],
                     header=("condition_label", "medical_abstract"))
    records, report = data.parse_medical_csv(path)
    assert report.read == len(ODD_TEXTS)
    assert [r["text"] for r in records] == ODD_TEXTS
    finance = write_csv(tmp_path / "finance.csv", [(ODD_TEXTS[0], "positive", "earnings")],
                        header=("sentence", "label", "topic"))
    assert data.parse_finance_csv(finance)[0][0]["text"] == ODD_TEXTS[0]


def test_json_lines_split_on_newlines_only(tmp_path):
    path = tmp_path / "odd.jsonl"
    rows = [{"sentence": text, "label": "positive"} for text in ODD_TEXTS[1:]]
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\r\n" for r in rows),
                    encoding="utf-8")
    assert data.read_table(path) == rows


# ------------------------------------------------------------------ formats and errors
def test_read_every_format_with_string_or_int_labels(tmp_path):
    import pandas as pd

    rows = [{"sentence": t, "label": i % 3} for i, (t, _) in enumerate(ROWS)]
    write_csv(tmp_path / "a.csv", [(r["sentence"], r["label"]) for r in rows])
    write_csv(tmp_path / "a.tsv", [(r["sentence"], r["label"]) for r in rows], delimiter="\t")
    (tmp_path / "a.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    pd.DataFrame(rows).to_parquet(tmp_path / "a.parquet")
    for suffix in ("csv", "tsv", "jsonl", "parquet"):
        examples = data.load_examples(tmp_path / f"a.{suffix}", "sentence", "label")
        assert [e["text"] for e in examples] == [r["sentence"] for r in rows], suffix
        assert [e["label"] for e in examples] == [str(r["label"]) for r in rows], suffix
    assert data.label_order(["10", "2", "1"]) == ["1", "2", "10"]
    assert data.label_order(["neutral", "negative"]) == ["negative", "neutral"]


def test_text_pairs_and_file_errors(tmp_path):
    path = tmp_path / "pairs.jsonl"
    path.write_text('{"q": "Is it up?", "s": "Sales rose.", "y": "yes"}\n'
                    '{"q": "Is it down?", "s": "Sales rose.", "y": "no"}\n')
    examples = data.load_examples(path, "q", "y", pair_column="s")
    assert examples[0] == {"text": "Is it up?", "text_pair": "Sales rose.", "label": "yes"}
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"q": "a", "y": 1}\n{"q": "b", y: 2}\n')
    with pytest.raises(CourseError, match="line 2: not valid JSON"):
        data.load_examples(bad, "q", "y")
    with pytest.raises(CourseError, match="unknown file type '.xlsx'"):
        data.read_table(tmp_path / "data.xlsx")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(CourseError, match="the file is empty"):
        data.read_table(tmp_path / "empty.csv")
    (tmp_path / "latin1.csv").write_bytes("sentence,label\nHämeessä,positive\n".encode("latin-1"))
    with pytest.raises(CourseError, match="not valid UTF-8 text .undecodable byte at offset 16"):
        data.read_table(tmp_path / "latin1.csv")


def test_a_json_lines_row_missing_a_column_is_one_line_naming_it(tmp_path):
    """Issue 14 item 14: this used to end in "unexpected KeyError: 'label'"."""
    path = tmp_path / "rows.jsonl"
    path.write_text('{"sentence": "Sales rose.", "label": "positive"}\n\n'
                    '{"sentence": "Sales fell.", "label": "negative"}\n'
                    '{"sentence": "Sales held.", "lable": "neutral"}\n')
    with pytest.raises(CourseError) as excinfo:
        data.load_examples(path, "sentence", "label")
    message = str(excinfo.value)
    assert message == f"{path} line 4: missing column 'label' (found: sentence, lable)"
    path.write_text('{"sentence": "Sales rose.", "label": "positive"}\n{"label": "negative"}\n')
    with pytest.raises(CourseError, match="line 2: missing column 'sentence'"):
        data.load_examples(path, "sentence", "label")


# ------------------------------------------------------------------ labels (issue 14, item 14)
def test_labels_typed_differently_are_one_class_and_said_so(tmp_path, capsys):
    nfc = unicodedata.normalize("NFC", "café")
    nfd = unicodedata.normalize("NFD", "café")
    assert nfc != nfd
    rows = [("a", "positive"), ("b", " positive "), ("c", "Positive"), ("d", "positive"),
            ("e", nfc), ("f", nfd), ("g", "neutral  one"), ("h", "neutral one")]
    path = write_csv(tmp_path / "labels.csv", rows)
    examples = data.load_examples(path, "sentence", "label")
    assert [e["label"] for e in examples] == ["positive"] * 4 + [nfc, nfc] + ["neutral one"] * 2
    notes = capsys.readouterr().err.strip().splitlines()
    assert len(notes) == 2 and all(n.startswith(f"note: {path}: ") for n in notes)
    assert "3 labels normalised" in notes[0]
    assert "differ only in case were merged: 'positive' (3 rows) and 'Positive' (1 rows) -> " \
           "'positive'" in notes[1]


def test_integer_valued_labels_are_integers(tmp_path, capsys):
    path = write_csv(tmp_path / "numbers.csv", [("a", "1"), ("b", "1.0"), ("c", "2"),
                                                ("d", "2.00"), ("e", "10")])
    examples = data.load_examples(path, "sentence", "label")
    assert [e["label"] for e in examples] == ["1", "1", "2", "2", "10"]
    assert data.label_order(e["label"] for e in examples) == ["1", "2", "10"]
    assert "2 labels normalised" in capsys.readouterr().err
    jsonl = tmp_path / "numbers.jsonl"
    jsonl.write_text('{"t": "a", "y": 1}\n{"t": "b", "y": 1.0}\n{"t": "c", "y": true}\n')
    assert [e["label"] for e in data.load_examples(jsonl, "t", "y")] == ["1", "1", "true"]
    assert data.label_text(0.5) == "0.5" and data.label_text("007") == "007"


def test_clean_labels_say_nothing(tmp_path, capsys):
    path = write_csv(tmp_path / "clean.csv", ROWS)
    data.load_examples(path, "sentence", "label")
    assert capsys.readouterr().err == ""


def test_check_labels_merges_eval_case_and_refuses_new_labels(tmp_path, capsys):
    train = [{"text": t, "label": y} for t, y in ROWS]
    evaluation = [{"text": "x", "label": "Positive"}, {"text": "y", "label": "neutral"}]
    names = data.check_labels(train, evaluation, "train.csv", "eval.csv", "label")
    assert names == ["negative", "neutral", "positive"]
    assert [e["label"] for e in evaluation] == ["positive", "neutral"]
    assert capsys.readouterr().err.count("note:") == 1
    with pytest.raises(CourseError, match="eval.csv row 1: label 'mixed' never appears"):
        data.check_labels(train, [{"text": "z", "label": "mixed"}], "train.csv", "eval.csv",
                          "label")
    with pytest.raises(CourseError, match="only one class"):
        data.check_labels(train[:1], [], "train.csv", "eval.csv", "label")


# ------------------------------------------------------------------ writing
@pytest.mark.parametrize("suffix", ["csv", "tsv", "jsonl", "json", "parquet"])
def test_write_table_round_trips(tmp_path, suffix):
    rows = [{"text": text, "label": "positive", "score": 0.25} for text in ODD_TEXTS]
    path = data.write_table(rows, tmp_path / "out" / f"predictions.{suffix}")
    back = data.read_table(path)
    assert [r["text"] for r in back] == ODD_TEXTS
    assert [float(r["score"]) for r in back] == [0.25] * len(ODD_TEXTS)
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left


def test_write_table_errors(tmp_path):
    with pytest.raises(CourseError, match="unknown file type '.xlsx'"):
        data.write_table([{"a": 1}], tmp_path / "out.xlsx")
    with pytest.raises(CourseError, match="no rows to write"):
        data.write_table([], tmp_path / "out.csv")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(CourseError, match="cannot write it"):
        data.write_table([{"a": 1}], blocker / "out.csv")
    row = {"text": "a", "scores": [0.1, 0.9]}
    path = data.write_table([row], tmp_path / "lists.csv")
    assert json.loads(tables.read_table(path)[0]["scores"]) == [0.1, 0.9]
