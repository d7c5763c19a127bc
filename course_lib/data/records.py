"""What every parser and the loader agree on: dataset names, label sets, and "the same text".

The four course datasets come from up to three sources (original files, the
Hub, the bundled samples) and several parsers. They must end with the same
columns, the same label names and the same idea of a duplicate, or a model
trained on one source would be scored against another's labels. Those shared
facts live here, in one place, with :class:`ParseReport`, the record of what a
parser read, dropped and repaired that every loader prints.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache

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
    """What a parser read, dropped (duplicates, conflicting labels) and repaired (QA offsets)."""

    source: str
    read: int = 0
    kept: int = 0
    duplicates: int = 0
    conflicts: int = 0
    repaired: int = 0  # answers moved to where their text is (SQuAD)
    trimmed: int = 0  # answers whose text lost surrounding spaces (SQuAD)
    notes: list[str] = field(default_factory=list)

    @property
    def worth_saying(self) -> bool:
        """Whether a loader should print this report (something was dropped or changed)."""
        return bool(self.duplicates or self.conflicts or self.repaired or self.trimmed)

    def __str__(self) -> str:
        extra = f"; {'; '.join(self.notes)}" if self.notes else ""
        return (f"{shown_path(self.source)}: read {self.read}, kept {self.kept}, dropped "
                f"{self.duplicates} duplicates and {self.conflicts} with conflicting "
                f"labels{extra}")


def shown_path(text: str, data_dir=None) -> str:
    """``text`` with this machine's folders shortened (``data/...``, ``$COURSE_DATA_DIR/...``,
    ``../shared/...``),
    so that printed reports, stored notebook outputs and logs read the same on every clone."""
    from pathlib import Path

    from .. import settings

    root = data_dir or settings.data_dir()
    if root:
        for form in (Path(root).expanduser().resolve(), Path(root).expanduser()):
            text = text.replace(str(form) + "/", "$COURSE_DATA_DIR/")
    shared = settings.REPO_DIR.parent / "shared"  # the real datasets beside the project
    return text.replace(str(shared) + "/", "../shared/").replace(str(settings.REPO_DIR) + "/", "")


@lru_cache(maxsize=4096)  # QA records repeat one long passage per question
def text_key(text: str) -> str:
    """The identity of a text for deduplication and leakage checks.

    Case, spaces and punctuation are ignored, so "Finland operates" and
    "Finland , operates" are one text.
    """
    return re.sub(r"[\W_]+", "", text.casefold())


def text_of(record: dict) -> str:
    """The dedupe key of a classification record: its ``text``."""
    return text_key(record["text"])


def dedupe(records: list[dict], key, label: str | None, report: ParseReport) -> list[dict]:
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
