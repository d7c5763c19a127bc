"""The course's own samples in data/: size, class balance, hard cases, and no templates.

Each test prints what it measured (run with ``-s`` to see the report). The
template detector is tested too: text filled in from templates must fail it.
"""

import csv
import json
import re
from collections import Counter
from pathlib import Path

import pytest

from course_lib import data, settings

DATA = Path(settings.DATA_DIR)
MAX_REPEATED_5GRAMS = 0.05  # hand-written samples: 0.4-2.2%; templated text: > 30%
MAX_NEAR_DUPLICATES = 0.02  # share of texts with a near twin (word-trigram Jaccard >= 0.5)


def quality_problems(texts: list[str]) -> tuple[dict, list[str]]:
    """The measured quality of a list of texts and what fails the course's bar."""
    quality = data.text_quality(texts)
    problems = []
    if quality["exact_duplicates"]:
        problems.append(f"{quality['exact_duplicates']} exact duplicates")
    if quality["near_duplicate_rate"] > MAX_NEAR_DUPLICATES:
        problems.append(f"near-duplicate rate {quality['near_duplicate_rate']:.3f}")
    if quality["repeated_5gram_share"] > MAX_REPEATED_5GRAMS:
        problems.append(f"repeated 5-gram share {quality['repeated_5gram_share']:.3f} "
                        "(templated text?)")
    return quality, problems


def share(texts, pattern) -> float:
    rx = re.compile(pattern, re.IGNORECASE)
    return sum(bool(rx.search(t)) for t in texts) / len(texts)


def balance(labels) -> dict[str, float]:
    labels = list(labels)
    counts = Counter(labels)
    return {k: round(v / len(labels), 3) for k, v in counts.most_common()}


def read_csv(path: Path) -> list[dict]:
    if not path.is_file():
        pytest.fail(f"{path} is missing: the course ships this sample")
    with open(path, encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


# ------------------------------------------------------------------ finance
def test_finance_sample():
    rows = read_csv(DATA / "finance" / "finance_sample.csv")
    texts = [r["sentence"] for r in rows]
    labels = balance(r["label"] for r in rows)
    topics = balance(r["topic"] for r in rows)
    quality, problems = quality_problems(texts)
    print(f"\nfinance: {quality}\n  labels {labels}\n  topics {topics}")
    assert not problems, problems
    assert len(rows) >= 600
    assert set(labels) == set(data.FINANCE_LABELS)
    assert max(labels, key=labels.get) == "neutral"  # as in real financial news
    assert min(labels.values()) >= 0.10
    assert set(topics) <= set(data.FINANCE_TOPICS) and 4 <= len(topics) <= 6
    assert min(topics.values()) >= 0.05
    # the hard cases real data has
    hard = {"negation": share(texts, r"\b(not|no|never|without|nor|none)\b|n't"),
            "hedging": share(texts, r"\b(may|might|could|expects?|expected|likely|uncertain)\b"),
            "mixed signals": share(texts, r"\b(but|although|despite|while|however|though)\b"),
            "numbers": share(texts, r"\d")}
    print(f"  hard cases {({k: round(v, 3) for k, v in hard.items()})}")
    assert hard["negation"] >= 0.05 and hard["hedging"] >= 0.10
    assert hard["mixed signals"] >= 0.03 and hard["numbers"] >= 0.30


# ------------------------------------------------------------------ medical
def test_medical_sample():
    rows = read_csv(DATA / "medical" / "medical_sample.csv")
    texts = [r["medical_abstract"] for r in rows]
    labels = balance(data.MEDICAL_LABELS[int(r["condition_label"]) - 1] for r in rows)
    quality, problems = quality_problems(texts)
    print(f"\nmedical: {quality}\n  labels {labels}")
    assert not problems, problems
    assert len(rows) >= 400
    assert set(labels) == set(data.MEDICAL_LABELS)
    assert min(labels.values()) >= 0.10
    sentences = [len(re.split(r"(?<=[.!?])\s+(?=[A-Z0-9(])", t.strip())) for t in texts]
    in_range = sum(3 <= n <= 6 for n in sentences) / len(sentences)
    print(f"  sentences per abstract {dict(sorted(Counter(sentences).items()))}")
    assert in_range >= 0.95


# ------------------------------------------------------------------ biomedical QA
def test_biomedical_qa_sample(tokenizer):
    path = DATA / "biomedical_qa" / "biomedical_qa_sample.json"
    records, report = data.parse_squad(path)  # every answer is at its answer_start
    passages = {r["context"] for r in records}
    raw = json.loads(path.read_text(encoding="utf-8"))
    questions = [q["question"] for a in raw["data"] for p in a["paragraphs"] for q in p["qas"]]
    quality, problems = quality_problems(sorted(passages) + questions)
    lengths = {c: len(tokenizer(c)["input_ids"]) for c in passages}
    beyond = 0  # answers that a model reading only the first 384-token window cannot find
    for r in records:
        if not r["answers"]["text"]:
            continue
        enc = tokenizer(r["question"], r["context"], truncation="only_second", max_length=384,
                        return_offsets_mapping=True)
        seen = max(end for (_, end), seq in zip(enc["offset_mapping"], enc.sequence_ids())
                   if seq == 1)
        beyond += r["answers"]["answer_start"][0] + len(r["answers"]["text"][0]) > seen
    unanswerable = sum(not r["answers"]["text"] for r in records)
    long_passages = sum(n > 384 for n in lengths.values())
    print(f"\nbiomedical_qa: {quality}\n  {len(records)} questions, {len(passages)} passages, "
          f"{long_passages} longer than 384 tokens, {beyond} answers beyond the first window, "
          f"{unanswerable} unanswerable")
    assert not problems, problems
    assert report.kept == len(records) >= 250 and len(passages) >= 60
    assert long_passages >= 15
    assert beyond >= 20


# ------------------------------------------------------------------ the detector itself
def test_templated_text_fails_the_quality_bar():
    """Sentences filled in from a template, as a generator would write them."""
    companies = ["Nordvik Paper", "Halden Foods", "Corvex Systems", "Beacon Hill", "Rautio Steel"]
    metrics = ["net sales", "operating profit", "order intake", "revenue"]
    moves = ["rose", "fell", "was flat"]
    templated = [f"{c} said its {m} {v} in the {q} quarter compared with a year earlier."
                 for c in companies for m in metrics for v in moves
                 for q in ("first", "second", "third")]
    quality, problems = quality_problems(templated)
    print(f"\ntemplated: {quality}")
    assert any("5-gram" in p for p in problems)
    assert any("near-duplicate" in p for p in problems)
