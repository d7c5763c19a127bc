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
