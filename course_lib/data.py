"""The course's datasets: one name each, up to three sources, one output shape.

``load_dataset(name)`` tries, in order:

1. the original files under ``COURSE_DATA_DIR`` (as published: FPB ``.txt``,
   Medical Abstracts CSV, SQuAD JSON, PubMedQA JSON);
2. the Hugging Face Hub copy (full profile only);
3. the course's own sample in ``data/`` (written for the course; see each datasheet).

Whatever the source, the result is a ``datasets.DatasetDict`` with ``train`` /
``validation`` / ``test`` splits made with a fixed seed (stratified for
classification, by document for QA), after exact duplicates are removed, so that
no text appears in two splits. Column names and label names are the same for
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
"""

from __future__ import annotations

import csv
import json
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

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
SPLIT_SEED = 42


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
                f"{self.duplicates} exact duplicates and {self.conflicts} with conflicting "
                f"labels{extra}")


# ---------------------------------------------------------------- parsers
def _read_text(path: Path, encoding: str) -> str:
    if not path.is_file():
        raise CourseError(f"{path}: file not found")
    try:
        return path.read_bytes().decode(encoding)
    except UnicodeDecodeError as err:
        raise CourseError(f"{path}: not valid {encoding} text (byte {err.start})") from None


def _dedupe(records: list[dict], key: str, label: str, report: ParseReport) -> list[dict]:
    """Drop exact repeats of ``key``; drop every copy of a text whose labels disagree."""
    labels_of: dict[str, set] = {}
    for r in records:
        labels_of.setdefault(r[key], set()).add(r[label])
    seen, kept = set(), []
    for r in records:
        text = r[key]
        if len(labels_of[text]) > 1:
            report.conflicts += 1
            continue
        if text in seen:
            report.duplicates += 1
            continue
        seen.add(text)
        kept.append(r)
    report.kept = len(kept)
    return kept


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
                              f"{'/'.join(FINANCE_LABELS)}, got {line[:60]!r}")
        if not sentence.strip():
            raise CourseError(f"{source} line {number}: empty sentence")
        records.append({"text": sentence.strip(), "label": label})
    report.read = len(records)
    return _dedupe(records, "text", "label", report), report


def parse_fpb_file(path: Path) -> tuple[list[dict], ParseReport]:
    """One FPB agreement file; Latin-1 as published (not UTF-8)."""
    return parse_fpb_lines(_read_text(Path(path), "latin-1"), str(path))


def parse_finance_csv(path: Path) -> tuple[list[dict], ParseReport]:
    """The course sample: ``sentence,label,topic`` (UTF-8)."""
    rows = _read_csv(path, ["sentence", "label"])
    report = ParseReport(str(path))
    records = []
    for number, row in enumerate(rows, 2):
        label, topic = row["label"].strip(), (row.get("topic") or "").strip()
        _check_text(row["sentence"], path, number)
        if label not in FINANCE_LABELS:
            raise CourseError(f"{path} row {number}: label {label!r} is not one of "
                              f"{', '.join(FINANCE_LABELS)}")
        if topic and topic not in FINANCE_TOPICS:
            raise CourseError(f"{path} row {number}: topic {topic!r} is not one of "
                              f"{', '.join(FINANCE_TOPICS)}")
        records.append({"text": row["sentence"].strip(), "label": label, "topic": topic or None})
    report.read = len(records)
    return _dedupe(records, "text", "label", report), report


def parse_medical_csv(path: Path) -> tuple[list[dict], ParseReport]:
    """Medical Abstracts CSV: ``condition_label`` 1-5 and ``medical_abstract``."""
    rows = _read_csv(path, ["condition_label", "medical_abstract"])
    report = ParseReport(str(path))
    records = []
    for number, row in enumerate(rows, 2):
        raw = row["condition_label"].strip()
        if raw not in {"1", "2", "3", "4", "5"}:
            raise CourseError(f"{path} row {number}: condition_label {raw!r} is not 1-5")
        _check_text(row["medical_abstract"], path, number)
        records.append({"text": row["medical_abstract"].strip(),
                        "label": MEDICAL_LABELS[int(raw) - 1]})
    report.read = len(records)
    return _dedupe(records, "text", "label", report), report


def _check_text(text: str | None, path, number: int) -> None:
    if text is None or not text.strip():
        raise CourseError(f"{path} row {number}: empty text")


def _read_csv(path: Path, required: list[str]) -> list[dict]:
    text = _read_text(Path(path), "utf-8-sig")
    reader = csv.DictReader(text.splitlines())
    missing = [c for c in required if c not in (reader.fieldnames or [])]
    if missing:
        raise CourseError(f"{path}: missing column {', '.join(missing)} "
                          f"(found {', '.join(reader.fieldnames or []) or 'no header'})")
    return list(reader)


def parse_squad(path_or_data, source: str | None = None) -> tuple[list[dict], ParseReport]:
    """SQuAD 1.1 / 2.0 JSON (``data -> paragraphs -> qas -> answers``), as COVID-QA uses.

    Every answer must be found at its ``answer_start``; ``is_impossible`` questions
    get empty answers.
    """
    if isinstance(path_or_data, (str, Path)):
        source = source or str(path_or_data)
        try:
            data = json.loads(_read_text(Path(path_or_data), "utf-8"))
        except json.JSONDecodeError as err:
            raise CourseError(f"{source}: malformed JSON ({err.msg}, line {err.lineno})") from None
    else:
        data, source = path_or_data, source or "<squad data>"
    report = ParseReport(source)
    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
        raise CourseError(f"{source}: not SQuAD format (expected a top-level 'data' list)")
    records, seen_ids = [], set()
    for a, article in enumerate(data["data"]):
        title = str(article.get("title", f"article-{a}"))
        paragraphs = article.get("paragraphs")
        if not isinstance(paragraphs, list):
            raise CourseError(f"{source}: article {a} ({title!r}) has no 'paragraphs' list")
        for p, paragraph in enumerate(paragraphs):
            context = paragraph.get("context")
            if not isinstance(context, str) or not context.strip():
                raise CourseError(f"{source}: article {a} paragraph {p} has no context text")
            doc = str(paragraph.get("document_id", title))
            for q in paragraph.get("qas", []):
                qid = str(q.get("id", ""))
                question = q.get("question")
                if not qid or not isinstance(question, str) or not question.strip():
                    raise CourseError(f"{source}: a question in article {a} paragraph {p} has "
                                      "no id or no question text")
                if qid in seen_ids:
                    raise CourseError(f"{source}: question id {qid!r} appears twice")
                seen_ids.add(qid)
                answers = [] if q.get("is_impossible") else q.get("answers", [])
                texts, starts = [], []
                for ans in answers:
                    text, start = ans.get("text"), ans.get("answer_start")
                    if not isinstance(text, str) or not isinstance(start, int):
                        raise CourseError(f"{source}: question {qid}: answer needs 'text' and "
                                          "an integer 'answer_start'")
                    if context[start : start + len(text)] != text:
                        raise CourseError(f"{source}: question {qid}: answer {text[:40]!r} is "
                                          f"not at answer_start {start}")
                    texts.append(text)
                    starts.append(start)
                if not texts and not q.get("is_impossible"):
                    raise CourseError(f"{source}: question {qid} has no answers and is not "
                                      "marked is_impossible")
                records.append({"id": qid, "title": doc, "context": context,
                                "question": question.strip(),
                                "answers": {"text": texts, "answer_start": starts}})
    report.read = report.kept = len(records)
    if not records:
        raise CourseError(f"{source}: no questions found")
    return records, report


def parse_pubmedqa(path: Path, test_ids_path: Path | None = None
                   ) -> tuple[list[dict], set[str], ParseReport]:
    """PubMedQA PQA-L (``ori_pqal.json``) and the official test ids when present."""
    source = str(path)
    try:
        data = json.loads(_read_text(Path(path), "utf-8"))
    except json.JSONDecodeError as err:
        raise CourseError(f"{source}: malformed JSON ({err.msg}, line {err.lineno})") from None
    if not isinstance(data, dict):
        raise CourseError(f"{source}: expected an object mapping PubMed ids to questions")
    records = []
    for pmid, item in data.items():
        try:
            decision = item["final_decision"]
            question, contexts = item["QUESTION"], item["CONTEXTS"]
        except (KeyError, TypeError):
            raise CourseError(f"{source}: entry {pmid} lacks QUESTION, CONTEXTS or "
                              "final_decision") from None
        if decision not in PUBMEDQA_LABELS:
            raise CourseError(f"{source}: entry {pmid}: final_decision {decision!r} is not "
                              "yes/no/maybe")
        records.append({"id": str(pmid), "question": question, "context": " ".join(contexts),
                        "label": decision, "long_answer": item.get("LONG_ANSWER", "")})
    test_ids: set[str] = set()
    if test_ids_path is not None and Path(test_ids_path).is_file():
        test_ids = set(json.loads(_read_text(Path(test_ids_path), "utf-8")))
    report = ParseReport(source, read=len(records), kept=len(records))
    return records, test_ids, report


# ---------------------------------------------------------------- splits
def split_records(records: list[dict], *, stratify_key: str | None = "label",
                  group_key: str | None = None, test_size: float = 0.2,
                  validation_size: float = 0.1, seed: int = SPLIT_SEED,
                  fixed_test_ids: set[str] | None = None) -> dict[str, list[dict]]:
    """train / validation / test with a fixed seed.

    Classification: stratified by label. QA: by ``group_key`` (the passage), so
    that questions about one passage never straddle two splits.
    """
    from sklearn.model_selection import GroupShuffleSplit, train_test_split

    if fixed_test_ids:
        test = [r for r in records if r["id"] in fixed_test_ids]
        rest = [r for r in records if r["id"] not in fixed_test_ids]
        val_share = validation_size / (1 - test_size) if test_size < 1 else validation_size
        train, val = train_test_split(rest, test_size=val_share, random_state=seed,
                                      stratify=[r[stratify_key] for r in rest]
                                      if stratify_key else None)
        return {"train": train, "validation": val, "test": test}
    if group_key:
        groups = [r[group_key] for r in records]
        outer = GroupShuffleSplit(n_splits=1, test_size=test_size, random_state=seed)
        rest_idx, test_idx = next(outer.split(records, groups=groups))
        rest = [records[i] for i in rest_idx]
        inner = GroupShuffleSplit(n_splits=1, test_size=validation_size / (1 - test_size),
                                  random_state=seed)
        train_idx, val_idx = next(inner.split(rest, groups=[r[group_key] for r in rest]))
        return {"train": [rest[i] for i in train_idx], "validation": [rest[i] for i in val_idx],
                "test": [records[i] for i in test_idx]}
    labels = [r[stratify_key] for r in records] if stratify_key else None
    rest, test = train_test_split(records, test_size=test_size, random_state=seed,
                                  stratify=labels)
    labels = [r[stratify_key] for r in rest] if stratify_key else None
    train, val = train_test_split(rest, test_size=validation_size / (1 - test_size),
                                  random_state=seed, stratify=labels)
    return {"train": train, "validation": val, "test": test}


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
    return records


# ---------------------------------------------------------------- sources
def _find_original(name: str, root: Path, agreement: str) -> list[Path] | None:
    """The original files for ``name`` under ``root`` (or its dataset subfolder)."""
    candidates = {"finance": ["financial_phrasebank", "FinancialPhraseBank-v1.0", "."],
                  "medical": ["medical_abstracts", "Medical-Abstracts-TC-Corpus", "."],
                  "biomedical_qa": ["covid_qa", "biomedical_qa", "covid-qa", "."],
                  "pubmedqa": ["pubmedqa", "."]}[name]
    for sub in candidates:
        folder = root / sub
        if not folder.is_dir():
            continue
        if name == "finance" and (folder / FPB_FILES[agreement]).is_file():
            return [folder / FPB_FILES[agreement]]
        if name == "medical":
            files = sorted(f for f in folder.glob("*.csv") if "label" not in f.stem.lower())
            if files:
                return files
        if name == "biomedical_qa":
            files = sorted(folder.glob("*.json"))
            if files:
                return files
        if name == "pubmedqa" and (folder / "ori_pqal.json").is_file():
            return [folder / "ori_pqal.json"]
    return None


def bundled_path(name: str) -> Path | None:
    path = {"finance": settings.DATA_DIR / "finance" / "finance_sample.csv",
            "medical": settings.DATA_DIR / "medical" / "medical_sample.csv",
            "biomedical_qa": settings.DATA_DIR / "biomedical_qa" / "biomedical_qa_sample.json",
            "pubmedqa": None}[name]
    return path if path is not None and path.is_file() else None


def _records_from_files(name: str, files: list[Path]):
    test_ids = None
    if name == "finance":
        records, report = parse_fpb_file(files[0])
    elif name == "medical":
        records, report = [], ParseReport(", ".join(map(str, files)))
        for f in files:
            part, _ = parse_medical_csv(f)
            records += part
        report.read = len(records)
        records = _dedupe(records, "text", "label", report)
    elif name == "biomedical_qa":
        records = []
        for f in files:
            part, _ = parse_squad(f)
            records += part
        report = ParseReport(", ".join(map(str, files)), read=len(records), kept=len(records))
    else:
        records, test_ids, report = parse_pubmedqa(files[0], files[0].parent /
                                                   "test_ground_truth.json")
    return records, report, test_ids


def _records_from_hub(name: str, agreement: str):
    """The Hub copies (full profile). FPB is read from the raw zip in its repo."""
    from huggingface_hub import hf_hub_download

    if name == "finance":
        zip_path = hf_hub_download(FPB_HUB[0], FPB_HUB[1], repo_type="dataset")
        with zipfile.ZipFile(zip_path) as archive:
            member = next(m for m in archive.namelist() if m.endswith(FPB_FILES[agreement]))
            text = archive.read(member).decode("latin-1")
        records, report = parse_fpb_lines(text, f"hub:{FPB_HUB[0]}/{member}")
        return records, report, None
    import datasets

    if name == "medical":
        dsd = datasets.load_dataset("TimSchopf/medical_abstracts")
        records = [{"text": r["medical_abstract"], "label": MEDICAL_LABELS[int(r["condition_label"])
                                                                            - 1]}
                   for split in dsd.values() for r in split]
        report = ParseReport("hub:TimSchopf/medical_abstracts", read=len(records))
        return _dedupe(records, "text", "label", report), report, None
    if name == "biomedical_qa":
        dsd = datasets.load_dataset("deepset/covid_qa_deepset")
        records = [{"id": str(r["id"]), "title": str(r.get("document_id", r.get("title", ""))),
                    "context": r["context"], "question": r["question"],
                    "answers": {"text": list(r["answers"]["text"]),
                                "answer_start": [int(s) for s in r["answers"]["answer_start"]]}}
                   for split in dsd.values() for r in split]
        return records, ParseReport("hub:deepset/covid_qa_deepset", read=len(records),
                                    kept=len(records)), None
    dsd = datasets.load_dataset("qiaojin/PubMedQA", "pqa_labeled")
    records = [{"id": str(r["pubid"]), "question": r["question"],
                "context": " ".join(r["context"]["contexts"]), "label": r["final_decision"],
                "long_answer": r.get("long_answer", "")} for r in dsd["train"]]
    return records, ParseReport("hub:qiaojin/PubMedQA", read=len(records),
                                kept=len(records)), None


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


DATASETS = ("finance", "medical", "biomedical_qa", "pubmedqa")


def load_dataset(name: str, *, source: str = "auto", data_dir: str | Path | None = None,
                 agreement: str = "allagree", test_size: float = 0.2,
                 validation_size: float = 0.1, seed: int = SPLIT_SEED, verbose: bool = True):
    """A course dataset as a ``DatasetDict`` (train / validation / test).

    ``source``: ``auto`` (files, then Hub in the full profile, then bundled),
    ``files``, ``hub`` or ``bundled``. ``agreement`` picks the FPB file
    (allagree, 75, 66, 50). The DatasetDict gets ``.source`` and ``.report``.
    """
    if name not in DATASETS:
        raise CourseError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    if agreement not in FPB_FILES:
        raise CourseError(f"agreement {agreement!r} is not one of {', '.join(FPB_FILES)}")
    root = Path(data_dir) if data_dir else settings.data_dir()
    found = None
    tried = []
    if source in ("auto", "files"):
        files = _find_original(name, root, agreement) if root else None
        if files:
            found = ("files", *_records_from_files(name, files))
        else:
            tried.append(f"no original files under COURSE_DATA_DIR={root}" if root
                         else "COURSE_DATA_DIR is not set")
    if found is None and (source == "hub" or (source == "auto" and settings.profile() == "full")):
        if settings.is_offline():
            tried.append("the Hub (offline)")
        else:
            try:
                found = ("hub", *_records_from_hub(name, agreement))
            except CourseError:
                raise
            except Exception as err:  # network, missing repo...
                tried.append(f"the Hub ({type(err).__name__}: {str(err)[:80]})")
    if found is None and source in ("auto", "bundled"):
        bundle = _records_from_bundle(name)
        if bundle is not None:
            found = ("bundled", *bundle)
        else:
            tried.append("no bundled sample in data/")
    if found is None:
        raise CourseError(f"dataset {name!r} not available from source={source}: "
                          f"{'; '.join(tried)}")
    kind, records, report, test_ids = found
    is_qa = name == "biomedical_qa"
    splits = split_records(_encode_labels(records, name),
                           stratify_key=None if is_qa else "label",
                           group_key="title" if is_qa else None, test_size=test_size,
                           validation_size=validation_size, seed=seed,
                           fixed_test_ids=test_ids)
    dsd = to_dataset_dict(splits, _features(name))
    dsd.source = f"{kind}: {report.source}"
    dsd.report = report
    if verbose:
        sizes = " / ".join(f"{k} {len(v)}" for k, v in dsd.items())
        print(f"{name}: {dsd.source} -> {sizes}")
    return dsd


def label_names(dataset, column: str = "label") -> list[str]:
    """Names of a ClassLabel column (``dataset`` may be a DatasetDict)."""
    split = dataset["train"] if hasattr(dataset, "keys") and "train" in dataset else dataset
    return list(split.features[column].names)


def label_counts(dataset, column: str = "label") -> dict[str, int]:
    names = label_names(dataset, column)
    counts = Counter(dataset[column])
    return {names[i]: counts.get(i, 0) for i in range(len(names))}


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
