"""Where a course dataset comes from: the original files, the Hub, or the bundled sample.

``load_dataset(name)`` tries, in order:

1. the original files under ``COURSE_DATA_DIR`` (as published: FPB ``.txt``,
   Medical Abstracts CSV, SQuAD JSON, PubMedQA JSON);
2. the Hugging Face Hub copy (full profile only, or ``source="hub"``);
3. the course's own sample in ``data/`` (written for the course; see each datasheet).

Whatever the source, the result is a ``datasets.DatasetDict`` with the same
columns, label names and leak-free splits (:mod:`course_lib.data.splits`), so a
notebook never needs to know which source it got. Hub access goes through
:func:`hub_file` and :func:`hub_dataset` (and ``settings.hub_reachable``), so a
test or a user with a local mirror can replace them.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

from .. import settings
from ..settings import CourseError
from .formats import (
    decode_fpb,
    medical_from_rows,
    parse_finance_csv,
    parse_fpb_file,
    parse_fpb_lines,
    parse_medical_csv,
    parse_pubmedqa,
    pubmedqa_from_mapping,
)
from .records import (
    COVIDQA_HUB,
    DATASETS,
    FINANCE_LABELS,
    FINANCE_TOPICS,
    FPB_FILES,
    FPB_HUB,
    MEDICAL_HUB,
    MEDICAL_LABELS,
    PUBMEDQA_HUB,
    PUBMEDQA_LABELS,
    SPLIT_SEED,
    ParseReport,
    dedupe,
    shown_path,
    text_key,
    text_of,
)
from .splits import split_records
from .squad import parse_squad, repair_note, squad_from_rows


def load_dataset(name: str, *, source: str = "auto", data_dir: str | Path | None = None,
                 agreement: str = "allagree", test_size: float = 0.2,
                 validation_size: float = 0.1, seed: int = SPLIT_SEED, verbose: bool = True):
    """A course dataset as a ``DatasetDict`` (train / validation / test).

    ``source``: ``auto`` (files, then Hub in the full profile, then bundled),
    ``files``, ``hub`` or ``bundled``. ``data_dir`` replaces ``COURSE_DATA_DIR``.
    ``agreement`` picks the FPB file (allagree, 75, 66, 50). The DatasetDict gets
    ``.source`` (which source was used) and ``.report`` (what was read, dropped and
    repaired: QA answers a few characters off their offset, see :mod:`.squad`).
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
    cap = settings.max_examples_cap(questions=is_qa)  # COURSE_MAX_STEPS: a smoke run's few
    if cap is not None and any(len(part) > cap for part in dsd.values()):
        full_sizes = {split: len(part) for split, part in dsd.items()}
        dsd = type(dsd)({split: part.select(range(min(cap, len(part))))
                         for split, part in dsd.items()})
        settings.record_cost("dataset", dataset=name, full_sizes=full_sizes,
                             kept={split: len(part) for split, part in dsd.items()})
        if verbose:
            unit = "questions" if is_qa else "examples"
            print(f"COURSE_MAX_STEPS: {name} keeps the first {cap} {unit} of each split")
    dsd.source = f"{kind}: {report.source}"
    dsd.report = report
    if verbose:
        sizes = " / ".join(f"{k} {len(v)}" for k, v in dsd.items())
        print(f"{name}: {shown_path(dsd.source, data_dir)} -> {sizes}")
        if report.worth_saying:
            print(f"  {shown_path(str(report), data_dir)}")
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
            tried.append("the Hub is off (HF_HUB_OFFLINE=1)" if "HF_HUB_OFFLINE" in os.environ
                         else "the Hub is off (the quick profile works offline; set "
                         "HF_HUB_OFFLINE=0 to allow it)")
        elif not settings.hub_reachable():
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
        records, report = _merge(name, [parse_medical_csv(f) for f in files], text_of,
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
    records = dedupe(records, key, None if name == "biomedical_qa" else "label", report)
    report.read = sum(p.read for _, p in parts)
    report.repaired = sum(p.repaired for _, p in parts)
    report.trimmed = sum(p.trimmed for _, p in parts)
    if report.repaired or report.trimmed:  # one note for all the files
        report.notes.append(repair_note(report))
    return records, report


# ---------------------------------------------------------------- sources: Hub
def hub_file(repo_id: str, filename: str) -> Path:
    """One raw file of a Hub dataset repository (cached by ``huggingface_hub``)."""
    from huggingface_hub import hf_hub_download

    with settings.hub_offline():
        return Path(hf_hub_download(repo_id, filename, repo_type="dataset"))


def hub_dataset(repo_id: str, config: str | None = None):
    """A Hub dataset (parquet / csv / json repos; loading scripts are never run)."""
    import datasets

    with settings.hub_offline():
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
            text, encoding = decode_fpb(archive.read(members[0]))
        records, report = parse_fpb_lines(text, f"hub:{FPB_HUB[0]}/{members[0]}")
        report.notes.append(f"encoding {encoding}")
        return records, report, None
    if name == "medical":
        return (*medical_from_rows(_hub_rows(MEDICAL_HUB), f"hub:{MEDICAL_HUB}"), None)
    if name == "biomedical_qa":
        return (*squad_from_rows(_hub_rows(COVIDQA_HUB), f"hub:{COVIDQA_HUB}"), None)
    rows = _hub_rows(*PUBMEDQA_HUB)
    data = {str(r["pubid"]): {"QUESTION": r["question"], "CONTEXTS": r["context"]["contexts"],
                              "final_decision": r["final_decision"],
                              "LONG_ANSWER": r.get("long_answer", "")} for r in rows}
    records, report = pubmedqa_from_mapping(data, f"hub:{PUBMEDQA_HUB[0]}")
    report.notes.append("no official test split in the Hub copy: a stratified 20% test")
    return records, report, None


def _hub_rows(repo_id: str, config: str | None = None) -> list[dict]:
    dsd = hub_dataset(repo_id, config)
    return [row for split in dsd.values() for row in split]


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


