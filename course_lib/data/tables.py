"""Tables a learner brings: CSV, TSV, JSON Lines and Parquet, read and written one way.

The command line (``classify``, ``predict``) and the dataset parsers read
tables through :func:`read_table`, so a quoted field that spans lines, a form
feed or a Unicode line separator inside a text is read the same everywhere
(the ``csv`` module over the decoded text with ``newline=""`` semantics, never
``str.splitlines``, which splits rows on ``\\x0c`` and ``\\u2028``).

:func:`load_examples` turns rows into ``{"text", "text_pair"?, "label"}`` and
makes labels that a person reads as one class into one class:

* surrounding and repeated spaces, the Unicode form (NFC) and integer-valued
  numbers (``1.0``, ``"1.0"`` and ``1`` are ``"1"``) are normalised, and the
  number of labels that changed is reported in one ``note:`` line on stderr;
* labels that differ only in case (``Positive`` / ``positive``) are merged into
  the most frequent spelling, and the merge is reported in one ``note:`` line.
  Merging with a note was chosen over refusing: a file typed by hand mixes case
  far more often than it means two classes by it.

Every problem (unknown suffix, bad encoding, malformed JSON, a row without a
needed column, an empty text or label) is one ``CourseError`` line naming the
file and the row (``row N``: the N-th data row of a CSV/TSV/Parquet file, header
not counted; ``line N``: the line of a JSON Lines file).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
import sys
import unicodedata
from collections import Counter
from pathlib import Path

from ..settings import CourseError
from .files import read_text

TABLE_FORMATS = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".jsonl": "jsonl",
                 ".json": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet", ".pq": "parquet"}


def _kind(path: Path) -> str:
    kind = TABLE_FORMATS.get(path.suffix.lower())
    if kind is None:
        raise CourseError(f"{path}: unknown file type {path.suffix or '(none)'!r}; use .csv, "
                          ".tsv, .jsonl or .parquet")
    return kind


# ------------------------------------------------------------------ reading
def read_table(path) -> list[dict]:
    """Rows of a CSV, TSV, JSON Lines (or JSON array) or Parquet file, as dicts.

    CSV/TSV cells stay strings (so ``007`` or ``1.0`` are kept as written) and
    header names lose surrounding spaces; JSON and Parquet keep their types.
    """
    return [row for _, row in located_rows(path)]


def located_rows(path) -> list[tuple[str, dict]]:
    """:func:`read_table`'s rows, each with where it is (``"row 3"``, ``"line 7"``)."""
    path = Path(path)
    kind = _kind(path)
    if kind == "parquet":
        return [(f"row {i}", row) for i, row in enumerate(_read_parquet(path), 1)]
    text = read_text(path)
    if not text.strip():
        raise CourseError(f"{path}: the file is empty")
    if kind == "jsonl":
        return _parse_json_rows(text, path)
    return [(f"row {i}", row) for i, row in enumerate(csv_rows(text, path, kind), 1)]


def csv_rows(text: str, source, kind: str = "csv") -> list[dict]:
    """The one CSV/TSV reader: ``csv.DictReader`` over the text with ``newline=""``.

    Quoted fields may hold line breaks; ``\\x0c``, ``\\u2028`` and the like are
    ordinary characters inside a row.
    """
    try:
        reader = csv.DictReader(io.StringIO(text, newline=""),
                                delimiter="\t" if kind == "tsv" else ",")
        if reader.fieldnames:
            reader.fieldnames = [name.strip() for name in reader.fieldnames]
        return list(reader)
    except csv.Error as err:
        raise CourseError(f"{source}: not a valid {kind.upper()} file ({err})") from None


def _read_parquet(path: Path) -> list[dict]:
    import pandas as pd

    if not path.is_file():
        raise CourseError(f"{path}: file not found")
    try:
        frame = pd.read_parquet(path)
    except Exception as err:  # pyarrow raises several types for a bad file
        raise CourseError(f"{path}: not a readable Parquet file ({_first_line(err)})") from None
    return frame.to_dict("records")


def _first_line(err: Exception) -> str:
    text = str(err).strip().splitlines()
    return text[0][:160] if text else type(err).__name__


def _parse_json_rows(text: str, path) -> list[tuple[str, dict]]:
    """JSON Lines (records split on ``\\n`` only, as the format says) or a JSON array."""
    if text.lstrip().startswith("["):  # a JSON array of objects is accepted too
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as err:
            raise CourseError(f"{path}: malformed JSON ({err.msg}, line {err.lineno})") from None
        numbered = [(f"item {i}", row) for i, row in enumerate(rows, 1)]
    else:
        numbered = []
        for number, line in enumerate(text.split("\n"), 1):
            if not line.strip():
                continue
            try:
                numbered.append((f"line {number}", json.loads(line)))
            except json.JSONDecodeError as err:
                raise CourseError(f"{path} line {number}: not valid JSON ({err.msg})") from None
    for where, row in numbered:
        if not isinstance(row, dict):
            raise CourseError(f"{path} {where}: expected a JSON object, got "
                              f"{type(row).__name__}")
    return numbered


# ------------------------------------------------------------------ writing
def write_table(rows, path) -> Path:
    """Write ``rows`` (dicts) as CSV, TSV, JSON Lines, JSON (an array) or Parquet by suffix.

    Columns are the keys in first-seen order. CSV/TSV cells that are lists or
    dicts are written as JSON. The file appears complete or not at all (written
    beside it, then renamed).
    """
    path = Path(path)
    kind = _kind(path)
    rows = [dict(row) for row in rows]
    if not rows:
        raise CourseError(f"{path}: no rows to write")
    columns = list(dict.fromkeys(key for row in rows for key in row))
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if kind == "parquet":
            import pandas as pd

            pd.DataFrame(rows, columns=columns).to_parquet(tmp, index=False)
        elif kind == "jsonl" and path.suffix.lower() == ".json":
            tmp.write_text(json.dumps(rows, ensure_ascii=False, default=_plain) + "\n",
                           encoding="utf-8")
        elif kind == "jsonl":
            tmp.write_text("".join(json.dumps(row, ensure_ascii=False, default=_plain) + "\n"
                                   for row in rows), encoding="utf-8")
        else:
            with open(tmp, "w", encoding="utf-8", newline="") as handle:
                writer = csv.DictWriter(handle, fieldnames=columns,
                                        delimiter="\t" if kind == "tsv" else ",")
                writer.writeheader()
                writer.writerows({k: _cell(v) for k, v in row.items()} for row in rows)
        os.replace(tmp, path)
    except OSError as err:
        raise CourseError(f"{path}: cannot write it ({err.strerror or err})") from None
    except (TypeError, ValueError) as err:  # a value JSON / Parquet cannot hold
        raise CourseError(f"{path}: cannot write these rows as {kind} "
                          f"({_first_line(err)})") from None
    finally:
        if tmp.is_file():
            tmp.unlink()
    return path


def _plain(value):
    """numpy / torch scalars and arrays as Python values (for JSON)."""
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _cell(value):
    value = _plain(value) if hasattr(value, "tolist") else value
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value, ensure_ascii=False)
    return "" if value is None else value


# ------------------------------------------------------------------ examples and labels
def _is_missing(value) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and not value.strip()


_INTEGER_VALUED = re.compile(r"[+-]?\d+\.0*")


def label_text(value) -> str:
    """A label as the class name it stands for.

    Spaces are trimmed and collapsed, the Unicode form is NFC (an "é" typed as
    "e" + accent is the same class as "é"), and integer-valued numbers are
    integers: ``1``, ``1.0`` and ``"1.0"`` are all ``"1"``. Booleans are
    ``"true"`` / ``"false"``. Case is kept (see :func:`load_examples`).
    """
    if hasattr(value, "item") and not isinstance(value, str):  # numpy scalar
        value = value.item()
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    text = unicodedata.normalize("NFC", " ".join(str(value).split()))
    if _INTEGER_VALUED.fullmatch(text):
        return str(int(text.split(".")[0]))
    return text


def _as_written(value) -> str:
    if hasattr(value, "item") and not isinstance(value, str):
        value = value.item()
    return str(value).lower() if isinstance(value, bool) else str(value)


def note(message: str) -> None:
    """One ``note: ...`` line on stderr (once under ``torchrun``: the first process only)."""
    if os.environ.get("RANK", "0") == "0":
        print(f"note: {message}", file=sys.stderr, flush=True)


def load_examples(path, text_column: str, label_column: str,
                  pair_column: str | None = None) -> list[dict]:
    """``[{"text", "text_pair"?, "label"}]`` from a file, every row checked.

    Labels go through :func:`label_text`; labels that differ only in case are
    merged into the file's most frequent spelling. Both are reported in one
    ``note:`` line each on stderr.
    """
    path = Path(path)
    rows = located_rows(path)
    if not rows:
        raise CourseError(f"{path}: no rows")
    columns = [text_column, label_column] + ([pair_column] if pair_column else [])
    found = list(rows[0][1])
    for column in columns:
        if column not in found:
            raise CourseError(f"{path}: missing column {column!r} (found: "
                              f"{', '.join(map(str, found)) or 'none'})")
    examples, tidied = [], []
    for where, row in rows:
        for column in columns:  # JSON Lines rows need not share the first row's keys
            if column not in row:
                raise CourseError(f"{path} {where}: missing column {column!r} (found: "
                                  f"{', '.join(map(str, row)) or 'none'})")
        example = {}
        for key, column in (("text", text_column), ("text_pair", pair_column)):
            if column is None:
                continue
            if _is_missing(row[column]):
                raise CourseError(f"{path} {where}: empty text in column {column!r}")
            example[key] = str(row[column])
        raw = row[label_column]
        if _is_missing(raw):
            raise CourseError(f"{path} {where}: empty label in column {label_column!r}")
        example["label"] = label_text(raw)
        if example["label"] != _as_written(raw):
            tidied.append((_as_written(raw), example["label"]))
        examples.append(example)
    if tidied:
        before, after = tidied[0]
        note(f"{path}: {len(tidied)} labels normalised (spaces, Unicode form, 1.0 as 1), "
             f"e.g. {before!r} -> {after!r}")
    _merge_case(examples, path)
    return examples


def _merge_case(examples: list[dict], path) -> None:
    """Labels that differ only in case become the most frequent spelling (ties: first seen)."""
    counts = Counter(ex["label"] for ex in examples)
    groups: dict[str, list[str]] = {}
    for label in counts:  # first-seen order
        groups.setdefault(label.casefold(), []).append(label)
    rename, said = {}, []
    for spellings in groups.values():
        if len(spellings) < 2:
            continue
        keep = max(spellings, key=lambda s: counts[s])  # max keeps the first of equals
        rename.update({s: keep for s in spellings if s != keep})
        said.append(" and ".join(f"{s!r} ({counts[s]} rows)" for s in spellings) +
                    f" -> {keep!r}")
    if rename:
        for ex in examples:
            ex["label"] = rename.get(ex["label"], ex["label"])
        note(f"{path}: labels that differ only in case were merged: {'; '.join(said)}")


def label_order(labels) -> list[str]:
    """Class names in id order: numerically when every label is an integer, else A-Z."""
    unique = set(labels)
    try:
        return sorted(unique, key=int)
    except ValueError:
        return sorted(unique)


def check_labels(train: list[dict], evaluation: list[dict], train_path, eval_path,
                 label_column: str) -> list[str]:
    """Label names (id order) after checking that train has two classes and eval no new one.

    An eval label that matches a train label except for case is renamed to the
    train spelling (in ``evaluation``, in place) and reported in one ``note:``
    line; any other label that train never saw is an error.
    """
    names = label_order(ex["label"] for ex in train)
    if len(names) < 2:
        raise CourseError(f"{train_path}: column {label_column!r} has only one class "
                          f"({names[0]!r}); a classifier needs at least two")
    known = set(names)
    by_case = {name.casefold(): name for name in names}
    renamed = Counter()
    for number, ex in enumerate(evaluation, 1):
        label = ex["label"]
        if label in known:
            continue
        if label.casefold() in by_case:
            ex["label"] = by_case[label.casefold()]
            renamed[(label, ex["label"])] += 1
            continue
        raise CourseError(f"{eval_path} row {number}: label {label!r} never appears "
                          f"in {train_path} (train labels: {', '.join(names)})")
    if renamed:
        said = "; ".join(f"{a!r} -> {b!r} ({n} rows)" for (a, b), n in renamed.items())
        note(f"{eval_path}: labels that differ from {train_path}'s only in case were "
             f"merged: {said}")
    return names
