"""course_lib.data on the real datasets in ../shared/datasets (skipped when absent)."""

import json

import pytest

from course_lib import data
from course_lib.settings import shared_datasets_dir

SHARED = shared_datasets_dir()
pytestmark = [pytest.mark.real_data,
              pytest.mark.skipif(SHARED is None, reason="../shared/datasets is not here")]

# Financial PhraseBank v1.0: lines per agreement file, and what deduplication drops.
# Duplicates include sentences that differ only in case or punctuation (data.text_key);
# "conflicts" counts every copy of a sentence that carries two different labels.
FPB_COUNTS = {  # agreement: (lines read, duplicates, conflicting copies, kept)
    "allagree": (2264, 5, 0, 2259),
    "75": (3453, 6, 0, 3447),
    "66": (4217, 8, 0, 4209),
    "50": (4846, 9, 4, 4833),
}


def _fpb_dir():
    folder = SHARED / "financial_phrasebank"
    if not folder.is_dir():
        pytest.skip("financial_phrasebank is not in ../shared/datasets")
    return folder


def _pubmedqa_dir():
    folder = SHARED / "pubmedqa"
    if not (folder / "ori_pqal.json").is_file():
        pytest.skip("pubmedqa is not in ../shared/datasets")
    return folder


def _covid_qa_file():
    path = SHARED / "covid_qa" / "covid_qa_part_a.json"
    if not path.is_file():
        pytest.skip("covid_qa is not in ../shared/datasets")
    return path


# COVID-QA, half of the 2020-04-23 release (../shared/datasets/README.md): 49 articles and
# 820 questions, one answer each. 177 answers sit 1-3 characters from their answer_start
# (139 of them because the text starts with a space the offset skips); 134 more are at their
# offset with spaces around the text. 11 questions are asked 2-3 times about the same
# article with different answers: all 25 copies are dropped, leaving 795 questions.
COVID_QA = {"articles": 49, "questions": 820, "answers": 820, "repaired": 177, "trimmed": 134,
            "conflicts": 25, "kept": 795}


@pytest.mark.parametrize("agreement", list(FPB_COUNTS))
def test_fpb_counts_per_agreement_level(agreement):
    folder = _fpb_dir()
    records, report = data.parse_fpb_file(folder / data.FPB_FILES[agreement])
    print(f"\n{report}")
    assert (report.read, report.duplicates, report.conflicts, report.kept) == \
        FPB_COUNTS[agreement]
    assert len(records) == report.kept
    assert {r["label"] for r in records} == set(data.FINANCE_LABELS)


def test_fpb_encodings_are_detected():
    """AllAgree is UTF-8, the other three are Latin-1: both read without mojibake."""
    folder = _fpb_dir()
    for agreement in FPB_COUNTS:
        records, report = data.parse_fpb_file(folder / data.FPB_FILES[agreement])
        assert not any("Ã" in r["text"] for r in records), agreement
    assert "encoding utf-8" in str(data.parse_fpb_file(folder / data.FPB_FILES["allagree"])[1])
    assert "encoding latin-1" in str(data.parse_fpb_file(folder / data.FPB_FILES["50"])[1])


def test_fpb_all_agree_sentences_are_in_the_50_percent_file():
    folder = _fpb_dir()
    all_agree, _ = data.parse_fpb_file(folder / data.FPB_FILES["allagree"])
    fifty, _ = data.parse_fpb_file(folder / data.FPB_FILES["50"])
    keys = {data.text_key(r["text"]) for r in fifty}
    missing = [r for r in all_agree if data.text_key(r["text"]) not in keys]
    assert len(missing) == 0


@pytest.mark.parametrize("agreement", list(FPB_COUNTS))
def test_fpb_splits_have_no_leakage(agreement):
    _fpb_dir()
    dsd = data.load_dataset("finance", source="files", data_dir=SHARED, agreement=agreement,
                            verbose=False)
    assert sum(len(s) for s in dsd.values()) == FPB_COUNTS[agreement][3]
    assert set(data.check_no_leakage(dsd, ["text"]).values()) == {0}
    # stratified: the test split has the class shares of the whole set (within 1 point)
    whole = data.label_counts(dsd)
    test = data.label_counts(dsd["test"])
    total, n_test = sum(whole.values()), sum(test.values())
    for name in whole:
        assert abs(whole[name] / total - test[name] / n_test) < 0.01


def test_pubmedqa_has_1000_questions_and_the_official_500_test_ids():
    folder = _pubmedqa_dir()
    records, test_ids, report = data.parse_pubmedqa(folder / "ori_pqal.json",
                                                    folder / "test_ground_truth.json")
    assert len(records) == 1000 and report.duplicates == report.conflicts == 0
    assert len(test_ids) == 500
    dsd = data.load_dataset("pubmedqa", source="files", data_dir=SHARED, verbose=False)
    truth = json.loads((folder / "test_ground_truth.json").read_text())
    assert sorted(dsd["test"]["id"]) == sorted(truth)
    names = data.label_names(dsd)
    assert {i: names[label] for i, label in zip(dsd["test"]["id"], dsd["test"]["label"])} == truth
    assert (len(dsd["train"]), len(dsd["validation"])) == (437, 63)
    assert set(data.check_no_leakage(dsd, data.LEAKAGE_COLUMNS["pubmedqa"]).values()) == {0}
    # the published majority baseline: 55.2% "yes" on the test split
    assert round(data.label_counts(dsd["test"])["yes"] / 500, 3) == 0.552


def test_covid_qa_loads_with_its_shifted_answers_repaired():
    path = _covid_qa_file()
    raw = json.loads(path.read_text(encoding="utf-8"))
    questions = [q for a in raw["data"] for p in a["paragraphs"] for q in p["qas"]]
    assert (len(raw["data"]), len(questions), sum(len(q["answers"]) for q in questions)) == \
        (COVID_QA["articles"], COVID_QA["questions"], COVID_QA["answers"])
    records, report = data.parse_squad(path)
    print(f"\n{report}")
    assert (report.read, report.repaired, report.trimmed, report.conflicts, report.kept) == \
        tuple(COVID_QA[k] for k in ("questions", "repaired", "trimmed", "conflicts", "kept"))
    assert len(records) == COVID_QA["kept"]
    assert len({r["title"] for r in records}) == COVID_QA["articles"]
    for r in records:
        for text, start in zip(r["answers"]["text"], r["answers"]["answer_start"]):
            assert text == text.strip() and r["context"][start : start + len(text)] == text


def test_covid_qa_splits_keep_each_article_on_one_side():
    _covid_qa_file()
    dsd = data.load_dataset("biomedical_qa", source="files", data_dir=SHARED, verbose=False)
    assert dsd.report.repaired == COVID_QA["repaired"]
    assert sum(len(split) for split in dsd.values()) == COVID_QA["kept"]
    titles = {name: set(split["title"]) for name, split in dsd.items()}
    assert not titles["train"] & titles["validation"]
    assert not titles["train"] & titles["test"]
    assert not titles["validation"] & titles["test"]
    assert len(set().union(*titles.values())) == COVID_QA["articles"]
    assert set(data.check_no_leakage(dsd, data.LEAKAGE_COLUMNS["biomedical_qa"]).values()) == {0}
