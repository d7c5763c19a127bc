"""Parsers for the classification datasets' original formats: FPB, the course CSVs, PubMedQA.

Each dataset is published in its own shape (FPB's ``SENTENCE@label`` lines in
Latin-1 or UTF-8, the Medical Abstracts CSV with labels 1-5, PubMedQA's JSON
keyed by PubMed id). These parsers turn each into the course's records
(``text`` / ``label`` ...), check every row, and drop duplicates and
conflicting copies (:func:`~course_lib.data.records.dedupe`), so that every
source of a dataset yields the same thing. SQuAD lives in
:mod:`course_lib.data.squad`: its answers need repairing, not just checking.
"""

from __future__ import annotations

from pathlib import Path

from ..settings import CourseError
from .files import read_bytes, read_json
from .records import (
    FINANCE_LABELS,
    FINANCE_TOPICS,
    MEDICAL_LABELS,
    PUBMEDQA_LABELS,
    ParseReport,
    dedupe,
    text_key,
    text_of,
)
from .tables import located_rows


def decode_fpb(data: bytes) -> tuple[str, str]:
    """FPB is documented as Latin-1, but ``Sentences_AllAgree.txt`` is in fact UTF-8.

    Reading it as Latin-1 turns "ä" into "Ã¤" (and breaks duplicate matching with
    the other files), so UTF-8 is tried first: Latin-1 text with accents is
    almost never valid UTF-8.
    """
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return data.decode("latin-1"), "latin-1"


def _table(path, required: list[str]) -> list[tuple[str, dict]]:
    """A CSV's rows (read by the one table reader) with the ``required`` columns."""
    rows = located_rows(path)
    if not rows:
        raise CourseError(f"{path}: no rows below the header")
    found = list(rows[0][1])
    missing = [c for c in required if c not in found]
    if missing:
        raise CourseError(f"{path}: missing column {', '.join(map(repr, missing))} "
                          f"(found: {', '.join(map(str, found)) or 'no header'})")
    return rows


def _check_text(text: str | None, path, where: str, column: str) -> str:
    if text is None or not str(text).strip():
        raise CourseError(f"{path} {where}: empty {column}")
    return str(text).strip()


# ---------------------------------------------------------------- Financial PhraseBank
def parse_fpb_lines(text: str, source: str) -> tuple[list[dict], ParseReport]:
    """Financial PhraseBank ``SENTENCE@label`` lines (the sentence may contain '@')."""
    report = ParseReport(source)
    records = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        sentence, sep, label = line.rpartition("@")
        label = label.strip()
        if not sep or label not in FINANCE_LABELS:
            raise CourseError(f"{source} line {number}: expected 'SENTENCE@label' with label in "
                              f"{'/'.join(FINANCE_LABELS)}, got {line[-60:]!r}")
        if not sentence.strip():
            raise CourseError(f"{source} line {number}: empty sentence")
        records.append({"text": sentence.strip(), "label": label, "topic": None})
    if not records:
        raise CourseError(f"{source}: no 'SENTENCE@label' lines found")
    return dedupe(records, text_of, "label", report), report


def parse_fpb_file(path: Path) -> tuple[list[dict], ParseReport]:
    """One FPB agreement file (UTF-8 or Latin-1, see :func:`decode_fpb`)."""
    text, encoding = decode_fpb(read_bytes(Path(path)))
    records, report = parse_fpb_lines(text, str(path))
    report.notes.append(f"encoding {encoding}")
    return records, report


def parse_finance_csv(path: Path) -> tuple[list[dict], ParseReport]:
    """The course sample: ``sentence,label,topic`` (UTF-8)."""
    report = ParseReport(str(path))
    records = []
    for where, row in _table(path, ["sentence", "label"]):
        sentence = _check_text(row["sentence"], path, where, "sentence")
        label, topic = (row["label"] or "").strip(), (row.get("topic") or "").strip()
        if label not in FINANCE_LABELS:
            raise CourseError(f"{path} {where}: label {label!r} is not one of "
                              f"{', '.join(FINANCE_LABELS)}")
        if topic and topic not in FINANCE_TOPICS:
            raise CourseError(f"{path} {where}: topic {topic!r} is not one of "
                              f"{', '.join(FINANCE_TOPICS)}")
        records.append({"text": sentence, "label": label, "topic": topic or None})
    return dedupe(records, text_of, "label", report), report


# ---------------------------------------------------------------- Medical Abstracts
def medical_label(raw, source, where: str, zero_based: bool = False) -> str:
    """A Medical Abstracts ``condition_label`` (1-5, or 0-4 in some copies) as its name."""
    value = str(raw).strip()
    allowed = {str(i - zero_based) for i in range(1, 6)}
    if value not in allowed:
        lo = 1 - zero_based
        raise CourseError(f"{source} {where}: condition_label {value!r} is not "
                          f"{lo}-{lo + 4}")
    return MEDICAL_LABELS[int(value) - 1 + zero_based]


def parse_medical_csv(path: Path) -> tuple[list[dict], ParseReport]:
    """Medical Abstracts CSV: ``condition_label`` 1-5 and ``medical_abstract``."""
    report = ParseReport(str(path))
    records = []
    for where, row in _table(path, ["condition_label", "medical_abstract"]):
        label = medical_label(row["condition_label"], path, where)
        text = _check_text(row["medical_abstract"], path, where, "medical_abstract")
        records.append({"text": text, "label": label})
    return dedupe(records, text_of, "label", report), report


def medical_from_rows(rows: list[dict], source: str):
    """Hub rows of the Medical Abstracts corpus (``condition_label`` 1-5, or 0-4)."""
    zero_based = any(str(r["condition_label"]).strip() == "0" for r in rows)
    records = [{"text": _check_text(r["medical_abstract"], source, f"row {i}",
                                    "medical_abstract"),
                "label": medical_label(r["condition_label"], source, f"row {i}", zero_based)}
               for i, r in enumerate(rows, 1)]
    report = ParseReport(source)
    return dedupe(records, text_of, "label", report), report


# ---------------------------------------------------------------- PubMedQA
def pubmedqa_record(pmid, item, source) -> dict:
    """One PQA-L entry: the question, the abstract (its CONTEXTS joined) and the decision."""
    if not isinstance(item, dict):
        raise CourseError(f"{source}: entry {pmid} is not an object")
    missing = [k for k in ("QUESTION", "CONTEXTS", "final_decision") if k not in item]
    if missing:
        raise CourseError(f"{source}: entry {pmid} lacks {', '.join(missing)}")
    decision, question, contexts = item["final_decision"], item["QUESTION"], item["CONTEXTS"]
    if decision not in PUBMEDQA_LABELS:
        raise CourseError(f"{source}: entry {pmid}: final_decision {decision!r} is not "
                          "yes/no/maybe")
    if not isinstance(question, str) or not question.strip():
        raise CourseError(f"{source}: entry {pmid}: empty QUESTION")
    if not isinstance(contexts, list) or not " ".join(map(str, contexts)).strip():
        raise CourseError(f"{source}: entry {pmid}: CONTEXTS must be a non-empty list of "
                          "strings")
    return {"id": str(pmid), "question": question.strip(),
            "context": " ".join(str(c).strip() for c in contexts),
            "label": decision, "long_answer": str(item.get("LONG_ANSWER") or "")}


def pubmedqa_from_mapping(data: dict, source: str) -> tuple[list[dict], ParseReport]:
    """Records of a ``{pmid: entry}`` mapping, one per question (repeats dropped)."""
    records = [pubmedqa_record(pmid, item, source) for pmid, item in data.items()]
    report = ParseReport(source)
    return dedupe(records, lambda r: text_key(r["question"]), "label", report), report


def parse_pubmedqa(path: Path, test_ids_path: Path | None = None
                   ) -> tuple[list[dict], set[str], ParseReport]:
    """PubMedQA PQA-L (``ori_pqal.json``) and the official test ids when present.

    ``test_ground_truth.json`` (beside it in the PubMedQA repository) maps the 500
    ids of the official test split to their answers; every one must be in the data.
    """
    source = str(path)
    data = read_json(Path(path))
    if not isinstance(data, dict) or not data:
        raise CourseError(f"{source}: expected an object mapping PubMed ids to questions")
    records, report = pubmedqa_from_mapping(data, source)
    test_ids: set[str] = set()
    if test_ids_path is not None and Path(test_ids_path).is_file():
        truth = read_json(Path(test_ids_path))
        if not isinstance(truth, (dict, list)) or not truth:
            raise CourseError(f"{test_ids_path}: expected an object or list of PubMed ids")
        test_ids = {str(i) for i in truth}
        unknown = test_ids - {r["id"] for r in records}
        if unknown:
            raise CourseError(f"{test_ids_path}: {len(unknown)} test ids are not in {source} "
                              f"(e.g. {sorted(unknown)[0]})")
        report.notes.append(f"official test split: {len(test_ids)} ids")
    return records, test_ids, report
