"""The course's datasets: one name each, up to three sources, one output shape.

``load_dataset(name)`` tries, in order:

1. the original files under ``COURSE_DATA_DIR`` (as published: FPB ``.txt``,
   Medical Abstracts CSV, SQuAD JSON, PubMedQA JSON);
2. the Hugging Face Hub copy (full profile only, or ``source="hub"``);
3. the course's own sample in ``data/`` (written for the course; see each datasheet).

Whatever the source, the result is a ``datasets.DatasetDict`` with ``train`` /
``validation`` / ``test`` splits made with a fixed seed (stratified for
classification, by passage for QA), after duplicates are removed, so that no
text appears in two splits. Column names and label names are the same for
every source:

============== =============================================================
finance        ``text``, ``label`` (negative/neutral/positive), ``topic`` (-1
               when the source has no topic, as FPB has not)
medical        ``text``, ``label`` (the five condition names)
biomedical_qa  ``id``, ``title``, ``context``, ``question``, ``answers``
               (``{"text": [...], "answer_start": [...]}``, empty = unanswerable)
pubmedqa       ``id``, ``question``, ``context``, ``label`` (yes/no/maybe),
               ``long_answer``
============== =============================================================

Two texts count as the same when they differ only in case, spaces or
punctuation (:func:`text_key`): FPB, for example, holds sentences that differ by
one comma, and a model that saw one in training has seen the other.

Every problem a user's file can have (missing file or column, empty text, a
label outside the label set, wrong encoding, malformed JSON or SQuAD, an answer
that is not at its ``answer_start``) raises :class:`~course_lib.settings.CourseError`
with one line naming the file and the problem.
"""

from __future__ import annotations

import csv
import json
import math
import re
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import settings
from .settings import CourseError

FINANCE_LABELS = ["negative", "neutral", "positive"]
FINANCE_TOPICS = ["deals", "earnings", "guidance", "markets", "operations"]
MEDICAL_LABELS = ["neoplasms", "digestive system diseases", "nervous system diseases",
                  "cardiovascular diseases", "general pathological conditions"]
PUBMEDQA_LABELS = ["yes", "no", "maybe"]
FPB_FILES = {"allagree": "Sentences_AllAgree.txt", "75": "Sentences_75Agree.txt",
             "66": "Sentences_66Agree.txt", "50": "Sentences_50Agree.txt"}
FPB_HUB = ("takala/financial_phrasebank", "data/FinancialPhraseBank-v1.0.zip")
MEDICAL_HUB = "TimSchopf/medical_abstracts"
COVIDQA_HUB = "deepset/covid_qa_deepset"
PUBMEDQA_HUB = ("qiaojin/PubMedQA", "pqa_labeled")
SPLIT_SEED = 42
DATASETS = ("finance", "medical", "biomedical_qa", "pubmedqa")
# the columns whose texts must never appear in two splits
LEAKAGE_COLUMNS = {"finance": ["text"], "medical": ["text"], "biomedical_qa": ["context"],
                   "pubmedqa": ["question", "context"]}


@dataclass
class ParseReport:
    """What a parser read and what it dropped (duplicates, conflicting labels)."""

    source: str
    read: int = 0
    kept: int = 0
    duplicates: int = 0
    conflicts: int = 0
    notes: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        extra = f"; {'; '.join(self.notes)}" if self.notes else ""
        return (f"{self.source}: read {self.read}, kept {self.kept}, dropped "
                f"{self.duplicates} duplicates and {self.conflicts} with conflicting "
                f"labels{extra}")


def text_key(text: str) -> str:
    """The identity of a text for deduplication and leakage checks.

    Case, spaces and punctuation are ignored, so "Finland operates" and
    "Finland , operates" are one text.
    """
    return re.sub(r"[\W_]+", "", text.casefold())


# ---------------------------------------------------------------- reading files
def _read_bytes(path: Path) -> bytes:
    path = Path(path)
    if not path.is_file():
        raise CourseError(f"{path}: file not found")
    data = path.read_bytes()
    if b"\x00" in data[:4096]:
        raise CourseError(f"{path}: contains NUL bytes (UTF-16 or a binary file?); "
                          "save it as UTF-8 text")
    return data


def _read_text(path: Path, encoding: str) -> str:
    data = _read_bytes(path)
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as err:
        raise CourseError(f"{path}: not valid {encoding} text (byte {err.start}); "
                          f"save it as {encoding}") from None


def _decode_fpb(data: bytes) -> tuple[str, str]:
    """FPB is documented as Latin-1, but ``Sentences_AllAgree.txt`` is in fact UTF-8.

    Reading it as Latin-1 turns "ä" into "Ã¤" (and breaks duplicate matching with
    the other files), so UTF-8 is tried first: Latin-1 text with accents is
    almost never valid UTF-8.
    """
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return data.decode("latin-1"), "latin-1"


def _read_json(path: Path):
    text = _read_text(Path(path), "utf-8-sig")
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise CourseError(f"{path}: malformed JSON ({err.msg}, line {err.lineno} column "
                          f"{err.colno})") from None


def _read_csv(path: Path, required: list[str]) -> list[dict]:
    text = _read_text(Path(path), "utf-8-sig")
    try:
        reader = csv.DictReader(text.splitlines())
        fields = [f.strip() for f in (reader.fieldnames or [])]
        reader.fieldnames = fields
        missing = [c for c in required if c not in fields]
        if missing:
            raise CourseError(f"{path}: missing column {', '.join(missing)} "
                              f"(found {', '.join(fields) or 'no header'})")
        rows = list(reader)
    except csv.Error as err:
        raise CourseError(f"{path}: malformed CSV ({err})") from None
    if not rows:
        raise CourseError(f"{path}: no rows below the header")
    return rows


def _check_text(text: str | None, path, number: int, column: str) -> str:
    if text is None or not text.strip():
        raise CourseError(f"{path} row {number}: empty {column}")
    return text.strip()


def _dedupe(records: list[dict], key, label: str | None, report: ParseReport) -> list[dict]:
    """Keep the first copy of each text; drop every copy of a text whose labels disagree.

    ``key(record)`` is the text's identity (see :func:`text_key`). A text with two
    labels is dropped entirely: keeping either copy would train on a label that
    annotators did not agree on. ``label=None``: only repeats are dropped.
    """
    labels_of: dict[str, set] = {}
    for r in records:
        labels_of.setdefault(key(r), set()).add(r[label] if label else None)
    seen, kept = set(), []
    for r in records:
        k = key(r)
        if len(labels_of[k]) > 1:
            report.conflicts += 1
            continue
        if k in seen:
            report.duplicates += 1
            continue
        seen.add(k)
        kept.append(r)
    report.read = len(records)
    report.kept = len(kept)
    return kept


def _text_of(record: dict) -> str:
    return text_key(record["text"])


# ---------------------------------------------------------------- parsers
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
    return _dedupe(records, _text_of, "label", report), report


def parse_fpb_file(path: Path) -> tuple[list[dict], ParseReport]:
    """One FPB agreement file (UTF-8 or Latin-1, see :func:`_decode_fpb`)."""
    text, encoding = _decode_fpb(_read_bytes(Path(path)))
    records, report = parse_fpb_lines(text, str(path))
    report.notes.append(f"encoding {encoding}")
    return records, report


def parse_finance_csv(path: Path) -> tuple[list[dict], ParseReport]:
    """The course sample: ``sentence,label,topic`` (UTF-8)."""
    rows = _read_csv(path, ["sentence", "label"])
    report = ParseReport(str(path))
    records = []
    for number, row in enumerate(rows, 2):
        sentence = _check_text(row["sentence"], path, number, "sentence")
        label, topic = (row["label"] or "").strip(), (row.get("topic") or "").strip()
        if label not in FINANCE_LABELS:
            raise CourseError(f"{path} row {number}: label {label!r} is not one of "
                              f"{', '.join(FINANCE_LABELS)}")
        if topic and topic not in FINANCE_TOPICS:
            raise CourseError(f"{path} row {number}: topic {topic!r} is not one of "
                              f"{', '.join(FINANCE_TOPICS)}")
        records.append({"text": sentence, "label": label, "topic": topic or None})
    return _dedupe(records, _text_of, "label", report), report


def _medical_label(raw, source, number: int, zero_based: bool = False) -> str:
    value = str(raw).strip()
    allowed = {str(i - zero_based) for i in range(1, 6)}
    if value not in allowed:
        lo = 1 - zero_based
        raise CourseError(f"{source} row {number}: condition_label {value!r} is not "
                          f"{lo}-{lo + 4}")
    return MEDICAL_LABELS[int(value) - 1 + zero_based]


def parse_medical_csv(path: Path) -> tuple[list[dict], ParseReport]:
    """Medical Abstracts CSV: ``condition_label`` 1-5 and ``medical_abstract``."""
    rows = _read_csv(path, ["condition_label", "medical_abstract"])
    report = ParseReport(str(path))
    records = []
    for number, row in enumerate(rows, 2):
        label = _medical_label(row["condition_label"], path, number)
        text = _check_text(row["medical_abstract"], path, number, "medical_abstract")
        records.append({"text": text, "label": label})
    return _dedupe(records, _text_of, "label", report), report


def parse_squad(path_or_data, source: str | None = None) -> tuple[list[dict], ParseReport]:
    """SQuAD 1.1 / 2.0 JSON (``data -> paragraphs -> qas -> answers``), as COVID-QA uses.

    Every answer must be found at its ``answer_start``; ``is_impossible`` questions
    get empty answers. A question asked twice about the same passage is kept once
    (and dropped, both copies, when the two copies give different answers).
    ``title`` is the paragraph's ``document_id`` when it has one (COVID-QA), else
    the article's title: the loader keeps each document in one split.
    """
    if isinstance(path_or_data, (str, Path)):
        source = source or str(path_or_data)
        data = _read_json(Path(path_or_data))
    else:
        data, source = path_or_data, source or "<squad data>"
    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
        raise CourseError(f"{source}: not SQuAD format (expected a top-level 'data' list)")
    records, seen_ids = [], set()
    for a, article in enumerate(data["data"]):
        if not isinstance(article, dict):
            raise CourseError(f"{source}: article {a} is not an object")
        title = str(article.get("title", f"article-{a}"))
        paragraphs = article.get("paragraphs")
        if not isinstance(paragraphs, list):
            raise CourseError(f"{source}: article {a} ({title!r}) has no 'paragraphs' list")
        for p, paragraph in enumerate(paragraphs):
            where = f"{source}: article {a} paragraph {p}"
            if not isinstance(paragraph, dict):
                raise CourseError(f"{where} is not an object")
            context = paragraph.get("context")
            if not isinstance(context, str) or not context.strip():
                raise CourseError(f"{where} has no context text")
            qas = paragraph.get("qas", [])
            if not isinstance(qas, list):
                raise CourseError(f"{where}: 'qas' is not a list")
            doc = str(paragraph.get("document_id", title))
            for q in qas:
                record = _squad_question(q, context, where, seen_ids)
                records.append({**record, "title": doc, "context": context})
    if not records:
        raise CourseError(f"{source}: no questions found")
    report = ParseReport(source)
    records = _dedupe(records, lambda r: (text_key(r["context"]), text_key(r["question"])),
                      "_answer_key", report)
    for r in records:
        del r["_answer_key"]
    return records, report


def _squad_question(q, context: str, where: str, seen_ids: set) -> dict:
    """One SQuAD question, with every answer checked against the passage."""
    if not isinstance(q, dict):
        raise CourseError(f"{where}: a question is not an object")
    qid = str(q.get("id", "")).strip()
    question = q.get("question")
    if not qid or not isinstance(question, str) or not question.strip():
        raise CourseError(f"{where}: a question has no id or no question text")
    if qid in seen_ids:
        raise CourseError(f"{where}: question id {qid!r} appears twice")
    seen_ids.add(qid)
    impossible = bool(q.get("is_impossible", False))
    answers = [] if impossible else q.get("answers", [])
    if not isinstance(answers, list):
        raise CourseError(f"{where}: question {qid}: 'answers' is not a list")
    texts, starts = [], []
    for ans in answers:
        text = ans.get("text") if isinstance(ans, dict) else None
        start = ans.get("answer_start") if isinstance(ans, dict) else None
        if not isinstance(text, str) or not text or isinstance(start, bool) \
                or not isinstance(start, int):
            raise CourseError(f"{where}: question {qid}: an answer needs a 'text' and an "
                              "integer 'answer_start'")
        if context[start : start + len(text)] != text:
            raise CourseError(f"{where}: question {qid}: answer {text[:40]!r} is not at "
                              f"answer_start {start} (found "
                              f"{context[start : start + len(text)][:40]!r})")
        texts.append(text)
        starts.append(start)
    if not texts and not impossible:
        raise CourseError(f"{where}: question {qid} has no answers and is not marked "
                          "is_impossible")
    return {"id": qid, "question": question.strip(),
            "answers": {"text": texts, "answer_start": starts},
            "_answer_key": tuple(sorted(set(texts)))}


def _pubmedqa_record(pmid, item, source) -> dict:
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


def parse_pubmedqa(path: Path, test_ids_path: Path | None = None
                   ) -> tuple[list[dict], set[str], ParseReport]:
    """PubMedQA PQA-L (``ori_pqal.json``) and the official test ids when present.

    ``test_ground_truth.json`` (beside it in the PubMedQA repository) maps the 500
    ids of the official test split to their answers; every one must be in the data.
    """
    source = str(path)
    data = _read_json(Path(path))
    if not isinstance(data, dict) or not data:
        raise CourseError(f"{source}: expected an object mapping PubMed ids to questions")
    records = [_pubmedqa_record(pmid, item, source) for pmid, item in data.items()]
    report = ParseReport(source)
    records = _dedupe(records, lambda r: text_key(r["question"]), "label", report)
    test_ids: set[str] = set()
    if test_ids_path is not None and Path(test_ids_path).is_file():
        truth = _read_json(Path(test_ids_path))
        if not isinstance(truth, (dict, list)) or not truth:
            raise CourseError(f"{test_ids_path}: expected an object or list of PubMed ids")
        test_ids = {str(i) for i in truth}
        unknown = test_ids - {r["id"] for r in records}
        if unknown:
            raise CourseError(f"{test_ids_path}: {len(unknown)} test ids are not in {source} "
                              f"(e.g. {sorted(unknown)[0]})")
        report.notes.append(f"official test split: {len(test_ids)} ids")
    return records, test_ids, report


# ---------------------------------------------------------------- splits
def _check_splittable(records: list[dict], stratify_key: str | None, groups, source: str,
                      test_size: float, val_share: float) -> None:
    """Fail with one line (not a scikit-learn traceback) when the data are too small."""
    if groups is not None:
        if len(set(groups)) < 3:
            raise CourseError(f"{source}: {len(set(groups))} passages are too few for "
                              "train / validation / test (need at least 3)")
        return
    classes = len({r[stratify_key] for r in records}) if stratify_key else 1
    n_test = math.ceil(len(records) * test_size)
    n_val = math.ceil((len(records) - n_test) * val_share)
    if n_val < classes or (test_size and n_test < classes) or len(records) < 10:
        raise CourseError(f"{source}: {len(records)} examples are too few to split into "
                          f"train / validation / test with {classes} classes in each")
    if stratify_key:
        counts = Counter(r[stratify_key] for r in records)
        rare = [f"{k} ({n})" for k, n in counts.items() if n < 3]
        if rare:
            raise CourseError(f"{source}: too few examples to stratify: {', '.join(map(str, rare))}"
                              "; every label needs at least 3")


def _passage_groups(records: list[dict], key: str) -> list[str]:
    """One group per document: questions on the same ``key`` value *or* the same
    passage text (two titles can share a passage) land in one group."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for r in records:
        a, b = find("k:" + str(r[key])), find("p:" + text_key(r["context"]))
        if a != b:
            parent[b] = a
    return [find("k:" + str(r[key])) for r in records]


def split_records(records: list[dict], *, stratify_key: str | None = "label",
                  group_key: str | None = None, test_size: float = 0.2,
                  validation_size: float = 0.1, seed: int = SPLIT_SEED,
                  fixed_test_ids: set[str] | None = None,
                  source: str = "dataset") -> dict[str, list[dict]]:
    """train / validation / test with a fixed seed.

    Classification: stratified by label, so every split has the same class
    shares. QA: by ``group_key`` (the document) and by passage text, so that
    questions about one passage never straddle two splits. ``fixed_test_ids``
    (PubMedQA's official test set) fixes the test split; the rest is split into
    train and validation.
    """
    from sklearn.model_selection import GroupShuffleSplit, train_test_split

    if not 0 < test_size < 1 or not 0 < validation_size < 1 - test_size:
        raise CourseError(f"test_size={test_size} and validation_size={validation_size} must "
                          "be shares between 0 and 1 that leave room for training")
    val_share = validation_size / (1 - test_size)
    labels_of = (lambda rows: [r[stratify_key] for r in rows]) if stratify_key else \
        (lambda rows: None)
    if fixed_test_ids:
        test = [r for r in records if r["id"] in fixed_test_ids]
        rest = [r for r in records if r["id"] not in fixed_test_ids]
        _check_splittable(rest, stratify_key, None, source, 0.0, val_share)
        train, val = train_test_split(rest, test_size=val_share, random_state=seed,
                                      stratify=labels_of(rest))
        return {"train": train, "validation": val, "test": test}
    if group_key:
        groups = _passage_groups(records, group_key)
        _check_splittable(records, None, groups, source, test_size, val_share)
        outer = GroupShuffleSplit(n_splits=1, test_size=test_size, random_state=seed)
        rest_idx, test_idx = next(outer.split(records, groups=groups))
        inner = GroupShuffleSplit(n_splits=1, test_size=val_share, random_state=seed)
        train_idx, val_idx = next(inner.split(rest_idx, groups=[groups[i] for i in rest_idx]))
        return {"train": [records[rest_idx[i]] for i in train_idx],
                "validation": [records[rest_idx[i]] for i in val_idx],
                "test": [records[i] for i in test_idx]}
    _check_splittable(records, stratify_key, None, source, test_size, val_share)
    rest, test = train_test_split(records, test_size=test_size, random_state=seed,
                                  stratify=labels_of(records))
    train, val = train_test_split(rest, test_size=val_share, random_state=seed,
                                  stratify=labels_of(rest))
    return {"train": train, "validation": val, "test": test}


def find_leaks(splits, columns: list[str] | None = None) -> dict[str, int]:
    """How many texts of each column appear in two splits (0 everywhere = no leakage).

    ``splits`` is a DatasetDict or a ``{name: list of dicts}``; texts are compared
    with :func:`text_key`. Returns ``{"text: train/test": 0, ...}``.
    """
    names = list(splits.keys())
    if columns is None:
        first = splits[names[0]]
        present = first.column_names if hasattr(first, "column_names") else list(first[0])
        columns = [c for c in ("text", "context", "question") if c in present][:1]
        if "question" in present and "label" in present:  # PubMedQA: one abstract per question
            columns = ["question", "context"]
    leaks = {}
    for column in columns:
        keys = {}
        for name in names:
            split = splits[name]
            values = split[column] if hasattr(split, "column_names") else \
                [r[column] for r in split]
            keys[name] = {text_key(v) for v in values}
        for i, a in enumerate(names):
            for b in names[i + 1 :]:
                leaks[f"{column}: {a}/{b}"] = len(keys[a] & keys[b])
    return leaks


def check_no_leakage(splits, columns: list[str] | None = None) -> dict[str, int]:
    """:func:`find_leaks`, raising when any text appears in two splits."""
    leaks = find_leaks(splits, columns)
    bad = {k: v for k, v in leaks.items() if v}
    if bad:
        raise CourseError("texts appear in two splits: " +
                          ", ".join(f"{k} ({v})" for k, v in bad.items()))
    return leaks


def to_dataset_dict(splits: dict[str, list[dict]], features):
    import datasets

    return datasets.DatasetDict({name: datasets.Dataset.from_list(rows, features=features)
                                 for name, rows in splits.items()})


def _features(name: str):
    from datasets import ClassLabel, Features, Sequence, Value

    if name == "finance":
        return Features({"text": Value("string"), "label": ClassLabel(names=FINANCE_LABELS),
                         "topic": ClassLabel(names=FINANCE_TOPICS)})
    if name == "medical":
        return Features({"text": Value("string"), "label": ClassLabel(names=MEDICAL_LABELS)})
    if name == "biomedical_qa":
        return Features({"id": Value("string"), "title": Value("string"),
                         "context": Value("string"), "question": Value("string"),
                         "answers": {"text": Sequence(Value("string")),
                                     "answer_start": Sequence(Value("int32"))}})
    return Features({"id": Value("string"), "question": Value("string"),
                     "context": Value("string"), "label": ClassLabel(names=PUBMEDQA_LABELS),
                     "long_answer": Value("string")})


def _encode_labels(records: list[dict], name: str) -> list[dict]:
    """ClassLabel ids; a missing finance topic becomes -1 (ClassLabel's "no label")."""
    if name == "finance":
        return [{"text": r["text"], "label": FINANCE_LABELS.index(r["label"]),
                 "topic": FINANCE_TOPICS.index(r["topic"]) if r.get("topic") else -1}
                for r in records]
    if name == "medical":
        return [{"text": r["text"], "label": MEDICAL_LABELS.index(r["label"])} for r in records]
    if name == "pubmedqa":
        return [{**r, "label": PUBMEDQA_LABELS.index(r["label"])} for r in records]
    return [{k: r[k] for k in ("id", "title", "context", "question", "answers")}
            for r in records]


# ---------------------------------------------------------------- sources: files
ORIGINAL_FOLDERS = {"finance": ["financial_phrasebank", "FinancialPhraseBank-v1.0"],
                    "medical": ["medical_abstracts", "Medical-Abstracts-TC-Corpus"],
                    "biomedical_qa": ["covid_qa", "biomedical_qa", "covid-qa", "COVID-QA"],
                    "pubmedqa": ["pubmedqa", "PubMedQA"]}


def _find_original(name: str, root: Path, agreement: str) -> list[Path] | None:
    """The original files for ``name`` in ``root``'s dataset subfolder (or ``root`` itself)."""
    for sub in [*ORIGINAL_FOLDERS[name], "."]:
        folder = root / sub
        if not folder.is_dir():
            continue
        if name == "finance" and (folder / FPB_FILES[agreement]).is_file():
            return [folder / FPB_FILES[agreement]]
        if name == "medical":
            # medical_tc_train.csv and medical_tc_test.csv; medical_tc_labels.csv (the label
            # names, no abstracts) is left out
            files = sorted(f for f in folder.glob("*.csv")
                           if _csv_has_column(f, "medical_abstract"))
            if files:
                return files
        if name == "biomedical_qa":
            files = sorted(folder.glob("*.json"))
            if files and sub != ".":
                return files
        if name == "pubmedqa" and (folder / "ori_pqal.json").is_file():
            return [folder / "ori_pqal.json"]
    return None


def _csv_has_column(path: Path, column: str) -> bool:
    with open(path, encoding="utf-8-sig", errors="replace") as handle:
        return column in handle.readline()


def _records_from_files(name: str, files: list[Path]):
    test_ids = None
    if name == "finance":
        records, report = parse_fpb_file(files[0])
    elif name == "medical":
        records, report = _merge(name, [parse_medical_csv(f) for f in files], _text_of,
                                 ", ".join(map(str, files)))
    elif name == "biomedical_qa":
        records, report = _merge(name, [parse_squad(f) for f in files],
                                 lambda r: (text_key(r["context"]), text_key(r["question"])),
                                 ", ".join(map(str, files)))
    else:
        records, test_ids, report = parse_pubmedqa(files[0], files[0].parent /
                                                   "test_ground_truth.json")
    return records, report, test_ids


def _merge(name: str, parts, key, source: str):
    """Several files of one dataset (a train and a test CSV): dedupe across them too."""
    records = [r for part, _ in parts for r in part]
    report = ParseReport(source)
    report.duplicates = sum(p.duplicates for _, p in parts)
    report.conflicts = sum(p.conflicts for _, p in parts)
    records = _dedupe(records, key, None if name == "biomedical_qa" else "label", report)
    report.read = sum(p.read for _, p in parts)
    return records, report


# ---------------------------------------------------------------- sources: Hub
# Hub access goes through these three small functions, so that a test (or a
# user with a local mirror) can replace them.
def hub_reachable() -> bool:
    """Whether the Hub answers within seconds (a firewall should not cost minutes)."""
    from .backbones import _hub_reachable

    return _hub_reachable()


def hub_file(repo_id: str, filename: str) -> Path:
    """One raw file of a Hub dataset repository (cached by ``huggingface_hub``)."""
    from huggingface_hub import hf_hub_download

    return Path(hf_hub_download(repo_id, filename, repo_type="dataset"))


def hub_dataset(repo_id: str, config: str | None = None):
    """A Hub dataset (parquet / csv / json repos; loading scripts are never run)."""
    import datasets

    return datasets.load_dataset(repo_id, config)


def _records_from_hub(name: str, agreement: str):
    """The Hub copies. FPB is read from the raw zip in its repo (its loading script
    no longer runs in datasets 4+); the others are plain data repos."""
    if name == "finance":
        zip_path = hub_file(*FPB_HUB)
        wanted = FPB_FILES[agreement]
        with zipfile.ZipFile(zip_path) as archive:  # skip macOS' __MACOSX/._Sentences... copies
            members = [m for m in archive.namelist()
                       if Path(m).name == wanted and "__MACOSX" not in m]
            if not members:
                raise CourseError(f"hub:{FPB_HUB[0]}/{FPB_HUB[1]}: no {wanted} in the zip")
            text, encoding = _decode_fpb(archive.read(members[0]))
        records, report = parse_fpb_lines(text, f"hub:{FPB_HUB[0]}/{members[0]}")
        report.notes.append(f"encoding {encoding}")
        return records, report, None
    if name == "medical":
        return (*_medical_from_rows(_hub_rows(MEDICAL_HUB)), None)
    if name == "biomedical_qa":
        return (*_squad_from_rows(_hub_rows(COVIDQA_HUB), f"hub:{COVIDQA_HUB}"), None)
    rows = _hub_rows(*PUBMEDQA_HUB)
    data = {str(r["pubid"]): {"QUESTION": r["question"], "CONTEXTS": r["context"]["contexts"],
                              "final_decision": r["final_decision"],
                              "LONG_ANSWER": r.get("long_answer", "")} for r in rows}
    source = f"hub:{PUBMEDQA_HUB[0]}"
    records = [_pubmedqa_record(pmid, item, source) for pmid, item in data.items()]
    report = ParseReport(source)
    records = _dedupe(records, lambda r: text_key(r["question"]), "label", report)
    report.notes.append("no official test split in the Hub copy: a stratified 20% test")
    return records, report, None


def _hub_rows(repo_id: str, config: str | None = None) -> list[dict]:
    dsd = hub_dataset(repo_id, config)
    return [row for split in dsd.values() for row in split]


def _medical_from_rows(rows: list[dict]):
    """Hub rows of the Medical Abstracts corpus (``condition_label`` 1-5, or 0-4)."""
    source = f"hub:{MEDICAL_HUB}"
    zero_based = any(str(r["condition_label"]).strip() == "0" for r in rows)
    records = [{"text": _check_text(r["medical_abstract"], source, i, "medical_abstract"),
                "label": _medical_label(r["condition_label"], source, i, zero_based)}
               for i, r in enumerate(rows)]
    report = ParseReport(source)
    return _dedupe(records, _text_of, "label", report), report


def _squad_from_rows(rows: list[dict], source: str):
    """Flat SQuAD-style rows (``context``, ``question``, ``answers``) checked like the JSON."""
    articles = {}
    for r in rows:
        doc = str(r.get("document_id", r.get("title", "")))
        answers = [{"text": t, "answer_start": int(s)}
                   for t, s in zip(r["answers"]["text"], r["answers"]["answer_start"])]
        articles.setdefault(doc, []).append(
            {"context": r["context"], "qas": [{"id": str(r["id"]), "question": r["question"],
                                               "answers": answers,
                                               "is_impossible": bool(r.get("is_impossible"))}]})
    data = {"data": [{"title": doc, "paragraphs": paragraphs}
                     for doc, paragraphs in articles.items()]}
    return parse_squad(data, source)


# ---------------------------------------------------------------- sources: bundled
def bundled_path(name: str) -> Path | None:
    path = {"finance": settings.DATA_DIR / "finance" / "finance_sample.csv",
            "medical": settings.DATA_DIR / "medical" / "medical_sample.csv",
            "biomedical_qa": settings.DATA_DIR / "biomedical_qa" / "biomedical_qa_sample.json",
            "pubmedqa": None}[name]
    return path if path is not None and path.is_file() else None


def _records_from_bundle(name: str):
    path = bundled_path(name)
    if path is None:
        return None
    if name == "finance":
        records, report = parse_finance_csv(path)
    elif name == "medical":
        records, report = parse_medical_csv(path)
    else:
        records, report = parse_squad(path)
    return records, report, None


# ---------------------------------------------------------------- the loader
def load_dataset(name: str, *, source: str = "auto", data_dir: str | Path | None = None,
                 agreement: str = "allagree", test_size: float = 0.2,
                 validation_size: float = 0.1, seed: int = SPLIT_SEED, verbose: bool = True):
    """A course dataset as a ``DatasetDict`` (train / validation / test).

    ``source``: ``auto`` (files, then Hub in the full profile, then bundled),
    ``files``, ``hub`` or ``bundled``. ``data_dir`` replaces ``COURSE_DATA_DIR``.
    ``agreement`` picks the FPB file (allagree, 75, 66, 50). The DatasetDict gets
    ``.source`` (which source was used) and ``.report`` (what was read and dropped).
    """
    if name not in DATASETS:
        raise CourseError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    if source not in ("auto", "files", "hub", "bundled"):
        raise CourseError(f"source={source!r} is not one of auto, files, hub, bundled")
    if agreement not in FPB_FILES:
        raise CourseError(f"agreement {agreement!r} is not one of {', '.join(FPB_FILES)}")
    found, tried = _find_source(name, source, data_dir, agreement)
    if found is None:
        hint = (" - set COURSE_DATA_DIR to a folder with pubmedqa/ori_pqal.json, or use "
                "COURSE_PROFILE=full online" if name == "pubmedqa" else "")
        raise CourseError(f"dataset {name!r} not available from source={source}: "
                          f"{'; '.join(tried)}{hint}")
    kind, records, report, test_ids = found
    is_qa = name == "biomedical_qa"
    splits = split_records(_encode_labels(records, name),
                           stratify_key=None if is_qa else "label",
                           group_key="title" if is_qa else None, test_size=test_size,
                           validation_size=validation_size, seed=seed,
                           fixed_test_ids=test_ids, source=report.source)
    dsd = to_dataset_dict(splits, _features(name))
    dsd.source = f"{kind}: {report.source}"
    dsd.report = report
    if verbose:
        sizes = " / ".join(f"{k} {len(v)}" for k, v in dsd.items())
        print(f"{name}: {dsd.source} -> {sizes}")
        if report.duplicates or report.conflicts:
            print(f"  {report}")
        if kind == "bundled" and any(t != "COURSE_DATA_DIR is not set" for t in tried):
            print(f"  note: fell back to the bundled sample ({'; '.join(tried)})")
    return dsd


def _find_source(name: str, source: str, data_dir, agreement: str):
    """Try the sources in order; return ``(kind, records, report, test_ids)`` and what failed."""
    tried: list[str] = []
    if source in ("auto", "files"):
        root = Path(data_dir).expanduser() if data_dir else settings.data_dir()
        if root is None:
            tried.append("COURSE_DATA_DIR is not set")
        elif not root.is_dir():
            tried.append(f"COURSE_DATA_DIR={root} is not a folder")
        else:
            files = _find_original(name, root, agreement)
            if files:
                return ("files", *_records_from_files(name, files)), tried
            tried.append(f"no original {name} files under {root}")
    if source == "hub" or (source == "auto" and settings.profile() == "full"):
        if settings.is_offline():
            tried.append("the Hub is off (HF_HUB_OFFLINE=1)")
        elif not hub_reachable():
            tried.append("the Hub is unreachable")
        else:
            try:
                return ("hub", *_records_from_hub(name, agreement)), tried
            except CourseError:
                raise
            except Exception as err:  # a missing repo, a changed layout, a network error
                tried.append(f"the Hub failed ({type(err).__name__}: {str(err)[:100]})")
    if source in ("auto", "bundled"):
        bundle = _records_from_bundle(name)
        if bundle is not None:
            return ("bundled", *bundle), tried
        tried.append("pubmedqa ships no bundled sample" if name == "pubmedqa"
                     else f"no bundled sample in {settings.DATA_DIR}")
    return None, tried


# ---------------------------------------------------------------- labels and balance
def label_names(dataset, column: str = "label") -> list[str]:
    """Names of a ClassLabel column (``dataset`` may be a DatasetDict)."""
    split = dataset["train"] if hasattr(dataset, "keys") and "train" in dataset else dataset
    return list(split.features[column].names)


def label_counts(dataset, column: str = "label") -> dict[str, int]:
    """``{label name: count}`` for a Dataset, or summed over a DatasetDict's splits."""
    names = label_names(dataset, column)
    splits = list(dataset.values()) if hasattr(dataset, "keys") else [dataset]
    counts = Counter(v for split in splits for v in split[column])
    return {names[i]: counts.get(i, 0) for i in range(len(names))}


def class_weights(labels, num_classes: int | None = None) -> np.ndarray:
    """Inverse-frequency weights, ``n / (k * count)`` (scikit-learn's "balanced").

    A class twice as rare weighs twice as much in the loss, so every class
    contributes the same total weight. Absent classes get weight 0.
    """
    labels = np.asarray(list(labels), dtype=int)
    k = num_classes or int(labels.max()) + 1
    counts = np.bincount(labels, minlength=k).astype(float)
    weights = np.zeros(k)
    present = counts > 0
    weights[present] = len(labels) / (present.sum() * counts[present])
    return weights


def weighted_loss(weights, label_key: str = "labels"):
    """A ``compute_loss(model, batch) -> (loss, outputs)`` for the Trainer with class weights.

    The model runs without labels (so it does not compute its own loss); the
    weighted cross-entropy replaces it.
    """
    import torch

    weight = torch.as_tensor(np.asarray(weights), dtype=torch.float32)

    def compute_loss(model, batch):
        inputs = {k: v for k, v in batch.items() if k != label_key}
        outputs = model(**inputs)
        logits = outputs["logits"] if isinstance(outputs, dict) else outputs.logits
        loss = torch.nn.functional.cross_entropy(
            logits.float(), batch[label_key], weight=weight.to(logits.device))
        return loss, outputs

    return compute_loss


def oversample(dataset, column: str = "label", seed: int = SPLIT_SEED):
    """Repeat examples of the rarer classes until every class is as large as the largest.

    Only for the training split: oversampling validation or test data would
    change what the scores mean.
    """
    labels = np.asarray(list(dataset[column]), dtype=int)
    rng = np.random.default_rng(seed)
    target = np.bincount(labels).max()
    indices = []
    for value in np.unique(labels):
        members = np.flatnonzero(labels == value)
        extra = rng.choice(members, size=target - len(members), replace=True)
        indices.extend(members.tolist() + extra.tolist())
    return dataset.select(rng.permutation(indices).tolist())


# ---------------------------------------------------------------- lengths and tokenising
def token_lengths(dataset, tokenizer, column: str = "text",
                  pair_column: str | None = None) -> np.ndarray:
    """Tokens per example, special tokens included, without truncation."""
    texts = list(dataset[column])
    pairs = list(dataset[pair_column]) if pair_column else None
    encoded = tokenizer(texts, pairs, truncation=False, add_special_tokens=True,
                        return_attention_mask=False, return_token_type_ids=False, verbose=False)
    return np.array([len(ids) for ids in encoded["input_ids"]])


def choose_max_length(lengths, coverage: float = 0.99, multiple_of: int = 8,
                      limit: int = 512) -> int:
    """The smallest ``max_length`` (a multiple of 8, at most ``limit``) that fits
    ``coverage`` of the examples untruncated. Longer examples are truncated (or,
    for QA, split into windows)."""
    value = float(np.quantile(np.asarray(lengths), coverage))
    return int(min(limit, int(np.ceil(value / multiple_of)) * multiple_of))


def tokenize(dataset, tokenizer, *, text_column: str = "text", pair_column: str | None = None,
             label_column: str | None = "label", max_length: int = 128,
             truncation: str | bool = True):
    """Tokenise once with ``datasets.map`` (batched, fast tokenizer), no padding.

    Padding happens per batch in the Trainer (dynamic padding). The label column is
    renamed ``labels``, the name Hugging Face models expect.
    """

    def encode(batch):
        pair = batch[pair_column] if pair_column else None
        return tokenizer(batch[text_column], pair, truncation=truncation, max_length=max_length)

    from datasets import disable_progress_bars, enable_progress_bars

    if not settings.show_progress():
        disable_progress_bars()
    try:
        out = dataset.map(encode, batched=True)
    finally:
        enable_progress_bars()
    if label_column and label_column != "labels":
        out = out.rename_column(label_column, "labels")
    return out


# ---------------------------------------------------------------- sample quality
def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


def repeated_ngram_share(texts: list[str], n: int = 5) -> float:
    """Share of word n-grams (counted once per text) that also occur in another text.

    Hand-written text repeats few 5-grams (under 2% in the course samples);
    text filled in from templates repeats most of them.
    """
    grams = Counter()
    for text in texts:
        words = _words(text)
        grams.update({tuple(words[i : i + n]) for i in range(len(words) - n + 1)})
    total = sum(grams.values())
    return sum(c for c in grams.values() if c > 1) / total if total else 0.0


def near_duplicate_pairs(texts: list[str], threshold: float = 0.5, n: int = 3
                         ) -> list[tuple[int, int, float]]:
    """Pairs of texts whose word-trigram sets overlap by Jaccard >= ``threshold``."""
    shingles = []
    for text in texts:
        words = _words(text)
        shingles.append({tuple(words[i : i + n]) for i in range(max(1, len(words) - n + 1))})
    pairs = []
    for i in range(len(shingles)):
        a = shingles[i]
        for j in range(i + 1, len(shingles)):
            b = shingles[j]
            small, large = sorted((len(a), len(b)))
            if not large or small / large < threshold:  # Jaccard <= small/large
                continue
            jaccard = len(a & b) / len(a | b)
            if jaccard >= threshold:
                pairs.append((i, j, jaccard))
    return pairs


def text_quality(texts: list[str]) -> dict:
    """Duplicate and template checks for a list of texts (a sample, or your own data)."""
    texts = list(texts)
    pairs = near_duplicate_pairs(texts)
    involved = {i for i, _, _ in pairs} | {j for _, j, _ in pairs}
    return {"texts": len(texts),
            "exact_duplicates": len(texts) - len({text_key(t) for t in texts}),
            "near_duplicate_rate": len(involved) / max(len(texts), 1),
            "repeated_5gram_share": repeated_ngram_share(texts, 5)}
