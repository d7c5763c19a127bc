"""course_lib.data: parsers, bad input, splits, leakage, sources (files, Hub stand-in, bundled).

The Hub is replaced by ``tests/fixtures/hub``, a folder laid out like the four Hub
repositories; ``tests/fixtures/data_dir`` holds tiny files in the original formats.
"""

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from course_lib import data, settings
from course_lib.data import formats, sources
from course_lib.settings import CourseError

FIXTURES = Path(__file__).parent / "fixtures"
DATA_DIR = FIXTURES / "data_dir"
HUB = FIXTURES / "hub"


@pytest.fixture
def hub_standin(monkeypatch, tmp_path):
    """Route the Hub functions course_lib.data uses to the local stand-in."""
    import datasets

    def hub_file(repo_id, filename):
        path = HUB / repo_id / filename
        if not path.is_file():
            raise FileNotFoundError(f"{repo_id}/{filename} is not on the stand-in Hub")
        return path

    def hub_dataset(repo_id, config=None):
        return datasets.load_dataset(str(HUB / repo_id), config, cache_dir=str(tmp_path))

    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(settings, "hub_reachable", lambda: True)
    monkeypatch.setattr(sources, "hub_file", hub_file)
    monkeypatch.setattr(sources, "hub_dataset", hub_dataset)
    return HUB


def one_line_error(excinfo, path, *words):
    """A CourseError message is one line that names the file and the problem."""
    message = str(excinfo.value)
    assert "\n" not in message, message
    assert str(path) in message, message
    for word in words:
        assert word.lower() in message.lower(), message


# ------------------------------------------------------------------ parsers
def test_fpb_parser_reads_latin1_and_utf8_and_reports_drops():
    records, report = data.parse_fpb_file(DATA_DIR / "financial_phrasebank" /
                                          "Sentences_50Agree.txt")
    # 39 lines: 2 exact/near repeats dropped, 1 sentence with two labels (both copies) dropped
    assert (report.read, report.kept, report.duplicates, report.conflicts) == (39, 35, 2, 2)
    assert "encoding latin-1" in str(report)
    texts = [r["text"] for r in records]
    assert "Sales of the Lännen Tehtaat food unit rose slightly" in texts
    assert any("@example.com" in t for t in texts)  # '@' inside the sentence is kept
    assert not any(t.startswith("Nokia 's share price") for t in texts)  # the conflict

    records, report = data.parse_fpb_file(DATA_DIR / "financial_phrasebank" /
                                          "Sentences_AllAgree.txt")
    assert "encoding utf-8" in str(report)
    assert any("Wärtsilä" in r["text"] for r in records)  # not mojibake "WÃ¤rtsilÃ¤"


def test_text_key_ignores_case_spaces_and_punctuation():
    assert data.text_key("Finland , operates") == data.text_key("finland operates.")
    assert data.text_key("up 5 %") != data.text_key("up 6 %")


def test_medical_and_squad_and_pubmedqa_parsers():
    records, _ = data.parse_medical_csv(DATA_DIR / "medical_abstracts" / "medical_tc_train.csv")
    assert {r["label"] for r in records} == set(data.MEDICAL_LABELS)

    records, report = data.parse_squad(DATA_DIR / "covid_qa" / "COVID-QA.json")
    assert report.duplicates == 1  # the same question twice on one passage
    unanswerable = [r for r in records if not r["answers"]["text"]]
    assert len(unanswerable) == 1
    for r in records:
        for text, start in zip(r["answers"]["text"], r["answers"]["answer_start"]):
            assert r["context"][start : start + len(text)] == text

    records, test_ids, report = data.parse_pubmedqa(DATA_DIR / "pubmedqa" / "ori_pqal.json",
                                                    DATA_DIR / "pubmedqa" /
                                                    "test_ground_truth.json")
    assert len(records) == 30 and len(test_ids) == 6
    assert "official test split: 6 ids" in str(report)


def test_squad_is_impossible_and_v11_without_flag():
    context = "Aspirin was given to 40 patients."
    v11 = {"data": [{"title": "t", "paragraphs": [{"context": context, "qas": [
        {"id": "1", "question": "How many?", "answers": [{"text": "40",
                                                          "answer_start": 21}]}]}]}]}
    records, _ = data.parse_squad(v11)
    assert records[0]["answers"] == {"text": ["40"], "answer_start": [21]}
    v20 = {"data": [{"title": "t", "paragraphs": [{"context": context, "qas": [
        {"id": "2", "question": "Which dose?", "answers": [], "is_impossible": True,
         "plausible_answers": [{"text": "Aspirin", "answer_start": 0}]}]}]}]}
    records, _ = data.parse_squad(v20)
    assert records[0]["answers"] == {"text": [], "answer_start": []}


# ------------------------------------------------------------------ SQuAD answers off their offset
CONTEXT = "Aspirin was given to 40 patients; 40 more got a placebo after 2 weeks."


def _qa_file(*answers):
    """A SQuAD dict with one question per ``(text, answer_start)``."""
    qas = [{"id": f"q{i}", "question": f"Question {i}?", "answers":
            [{"text": text, "answer_start": start}]} for i, (text, start) in enumerate(answers)]
    return {"data": [{"title": "t", "paragraphs": [{"context": CONTEXT, "qas": qas}]}]}


def test_squad_repairs_answers_a_few_characters_off():
    """Issue 15 item 1: the loader refused a whole file for one answer shifted by a space."""
    records, report = data.parse_squad(_qa_file(
        ("40", 21),                # right
        ("40", 20),                # off by one: the nearest "40" (21), not the second (34)
        ("40", 37),                # off by three, nearest is the second one (34)
        (" 40 patients", 21),      # leading space, start at the trimmed text (COVID-QA's case)
        ("a placebo ", 46),        # trailing space, at its place: trimmed only
        ("2 weeks", 58)))          # off by four
    found = [(r["answers"]["text"][0], r["answers"]["answer_start"][0]) for r in records]
    assert found == [("40", 21), ("40", 21), ("40", 34), ("40 patients", 21),
                     ("a placebo", 46), ("2 weeks", 62)]
    for text, start in found:
        assert CONTEXT[start : start + len(text)] == text
    assert (report.repaired, report.trimmed) == (4, 1)
    assert "repaired 4 answer offsets (text up to 5 characters from answer_start); trimmed " \
           "spaces around 1 answers" in str(report)
    assert data.locate_answer(CONTEXT, "40", 21 + 6) is None  # six off: too far


def test_squad_refuses_answers_nowhere_near_with_the_count_and_the_first_case():
    with pytest.raises(CourseError) as excinfo:  # "40" at 28 is 7 and 6 from the two "40"s
        data.parse_squad(_qa_file(("40", 21), ("placebo", 20), ("fifty", 3), ("40", 28)),
                         source="qa.json")
    message = str(excinfo.value)
    assert "\n" not in message
    assert message == ("qa.json: 3 answers are not within 5 characters of answer_start; first: "
                       "article 0 paragraph 0 question q1: answer 'placebo' is not at "
                       "answer_start 20 (found ' 40 pat')")


def test_load_dataset_repairs_biomedical_qa_files_and_says_so(tmp_path, capsys):
    folder = tmp_path / "covid_qa"
    folder.mkdir()
    source = json.loads((DATA_DIR / "covid_qa" / "COVID-QA.json").read_text())
    shifted = 0
    for article in source["data"]:
        for paragraph in article["paragraphs"]:
            for q in paragraph["qas"]:
                for answer in q["answers"][:1]:
                    if answer["answer_start"] > 0 and shifted < 3:
                        answer["answer_start"] -= 1  # off by one, as in the real release
                        shifted += 1
    (folder / "COVID-QA.json").write_text(json.dumps(source))
    dsd = data.load_dataset("biomedical_qa", source="files", data_dir=tmp_path)
    assert dsd.report.repaired == shifted == 3
    assert "repaired 3 answer offsets" in capsys.readouterr().out
    for split in dsd.values():
        for context, answers in zip(split["context"], split["answers"]):
            for text, start in zip(answers["text"], answers["answer_start"]):
                assert context[start : start + len(text)] == text

# ------------------------------------------------------------------ bad input
def _write(path: Path, content) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def _squad(context="Aspirin was given to 40 patients.", answer=None, **question):
    q = {"id": "q1", "question": "How many patients?", "is_impossible": False,
         "answers": [answer or {"text": "40", "answer_start": 21}], **question}
    return json.dumps({"data": [{"title": "t", "paragraphs": [{"context": context,
                                                                "qas": [q]}]}]})


FINANCE_CSV_HEADER = "sentence,label,topic\n"
BAD_INPUTS = [
    # (parser, file name, content, words the message must contain)
    ("fpb", "missing.txt", None, ["not found"]),
    ("fpb", "bad_label.txt", "Sales rose@positive\nSales fell@bad\n", ["line 2", "label"]),
    ("fpb", "no_separator.txt", "Sales rose positive\n", ["line 1", "SENTENCE@label"]),
    ("fpb", "empty_sentence.txt", "Sales rose@positive\n  @neutral\n", ["line 2", "empty"]),
    ("fpb", "empty.txt", "\n\n", ["no 'SENTENCE@label' lines"]),
    ("fpb", "utf16.txt", "Sales rose@positive\n".encode("utf-16"), ["NUL bytes"]),
    ("finance_csv", "missing.csv", None, ["not found"]),
    ("finance_csv", "no_label.csv", "sentence,topic\nSales rose,earnings\n",
     ["missing column 'label'"]),
    ("finance_csv", "empty_text.csv", FINANCE_CSV_HEADER + "Sales rose,positive,earnings\n"
     " ,neutral,deals\n", ["row 2", "empty sentence"]),
    ("finance_csv", "bad_label.csv", FINANCE_CSV_HEADER + "Sales rose,bullish,earnings\n",
     ["row 1", "'bullish'"]),
    ("finance_csv", "bad_topic.csv", FINANCE_CSV_HEADER + "Sales rose,positive,weather\n",
     ["row 1", "'weather'"]),
    ("finance_csv", "latin1.csv", (FINANCE_CSV_HEADER + "Myynti kasvoi Hämeessä,positive,"
                                   "earnings\n").encode("latin-1"), ["not valid utf-8", "byte"]),
    ("finance_csv", "header_only.csv", FINANCE_CSV_HEADER, ["no rows"]),
    ("medical", "missing.csv", None, ["not found"]),
    ("medical", "no_abstract.csv", "condition_label,abstract\n1,Tumour grew.\n",
     ["missing column 'medical_abstract'"]),
    ("medical", "semicolons.csv", "condition_label;medical_abstract\n1;Tumour grew.\n",
     ["missing column", "found: condition_label;medical_abstract"]),
    ("medical", "empty_text.csv", "condition_label,medical_abstract\n1,Tumour grew.\n2,\n",
     ["row 2", "empty medical_abstract"]),
    ("medical", "label_6.csv", "condition_label,medical_abstract\n6,Tumour grew.\n",
     ["row 1", "'6'", "1-5"]),
    ("medical", "label_name.csv", "condition_label,medical_abstract\nneoplasms,Tumour grew.\n",
     ["row 1", "'neoplasms'"]),
    ("medical", "latin1.csv", "condition_label,medical_abstract\n1,Tumour in Sjögren\n"
     .encode("latin-1"), ["not valid utf-8"]),
    ("medical", "utf16.csv", "condition_label,medical_abstract\n1,Tumour grew.\n"
     .encode("utf-16"), ["NUL bytes"]),
    ("squad", "missing.json", None, ["not found"]),
    ("squad", "malformed.json", '{"data": [', ["malformed JSON", "line 1"]),
    ("squad", "latin1.json", '{"data": "Sjögren"}'.encode("latin-1"), ["not valid utf-8"]),
    ("squad", "no_data.json", '{"version": "v2.0", "articles": []}', ["top-level 'data' list"]),
    ("squad", "no_paragraphs.json", '{"data": [{"title": "t"}]}', ["no 'paragraphs' list"]),
    ("squad", "no_context.json", '{"data": [{"title": "t", "paragraphs": [{"qas": []}]}]}',
     ["no context text"]),
    ("squad", "no_questions.json", '{"data": [{"title": "t", "paragraphs": [{"context": "x", '
     '"qas": []}]}]}', ["no questions"]),
    ("squad", "no_id.json", _squad(id=""), ["no id"]),
    ("squad", "empty_question.json", _squad(question="  "), ["no question text"]),
    ("squad", "far_start.json", _squad(answer={"text": "40", "answer_start": 2}),
     ["1 answer is not within 5 characters", "question q1", "not at answer_start 2"]),
    ("squad", "not_in_context.json", _squad(answer={"text": "fifty", "answer_start": 21}),
     ["1 answer is not within", "'fifty'"]),
    ("squad", "start_not_int.json", _squad(answer={"text": "40", "answer_start": "21"}),
     ["integer 'answer_start'"]),
    ("squad", "no_answers.json", _squad(answers=[]), ["no answers", "is_impossible"]),
    ("pubmedqa", "missing.json", None, ["not found"]),
    ("pubmedqa", "malformed.json", '{"123": {', ["malformed JSON"]),
    ("pubmedqa", "list.json", "[1, 2]", ["mapping PubMed ids"]),
    ("pubmedqa", "no_decision.json", '{"123": {"QUESTION": "Q?", "CONTEXTS": ["c"]}}',
     ["entry 123", "final_decision"]),
    ("pubmedqa", "bad_decision.json", '{"123": {"QUESTION": "Q?", "CONTEXTS": ["c"], '
     '"final_decision": "perhaps"}}', ["entry 123", "'perhaps'"]),
    ("pubmedqa", "empty_question.json", '{"123": {"QUESTION": " ", "CONTEXTS": ["c"], '
     '"final_decision": "yes"}}', ["entry 123", "empty QUESTION"]),
    ("pubmedqa", "empty_contexts.json", '{"123": {"QUESTION": "Q?", "CONTEXTS": [], '
     '"final_decision": "yes"}}', ["entry 123", "CONTEXTS"]),
    ("pubmedqa", "latin1.json", '{"123": "Sjögren"}'.encode("latin-1"), ["not valid utf-8"]),
]
PARSERS = {"fpb": data.parse_fpb_file, "finance_csv": data.parse_finance_csv,
           "medical": data.parse_medical_csv, "squad": data.parse_squad,
           "pubmedqa": data.parse_pubmedqa}


@pytest.mark.parametrize("parser,name,content,words", BAD_INPUTS,
                         ids=[f"{p}-{n}" for p, n, _, _ in BAD_INPUTS])
def test_bad_input_fails_with_one_line_naming_file_and_problem(tmp_path, parser, name,
                                                               content, words):
    path = tmp_path / name
    if content is not None:
        _write(path, content)
    with pytest.raises(CourseError) as excinfo:
        PARSERS[parser](path)
    one_line_error(excinfo, path, *words)


def test_pubmedqa_test_ids_must_exist_in_the_data(tmp_path):
    questions = _write(tmp_path / "ori_pqal.json", json.dumps(
        {"1": {"QUESTION": "Q?", "CONTEXTS": ["c"], "final_decision": "yes"}}))
    truth = _write(tmp_path / "test_ground_truth.json", '{"1": "yes", "999": "no"}')
    with pytest.raises(CourseError) as excinfo:
        data.parse_pubmedqa(questions, truth)
    one_line_error(excinfo, truth, "1 test ids are not in", "999")
    _write(truth, "{}")
    with pytest.raises(CourseError) as excinfo:
        data.parse_pubmedqa(questions, truth)
    one_line_error(excinfo, truth, "expected an object or list")


def test_load_dataset_argument_errors(tmp_path, monkeypatch):
    monkeypatch.delenv("COURSE_DATA_DIR", raising=False)
    for kwargs, words in [({"name": "imdb"}, ["unknown dataset 'imdb'"]),
                          ({"name": "finance", "source": "web"}, ["source='web'"]),
                          ({"name": "finance", "agreement": "90"}, ["agreement '90'"])]:
        with pytest.raises(CourseError, match=words[0].replace("(", r"\(")):
            data.load_dataset(**kwargs, verbose=False)
    with pytest.raises(CourseError) as excinfo:
        data.load_dataset("finance", source="files", verbose=False)
    assert "COURSE_DATA_DIR is not set" in str(excinfo.value)
    with pytest.raises(CourseError) as excinfo:
        data.load_dataset("medical", source="files", data_dir=tmp_path / "nope", verbose=False)
    one_line_error(excinfo, tmp_path / "nope", "is not a folder")
    with pytest.raises(CourseError) as excinfo:
        data.load_dataset("medical", source="files", data_dir=tmp_path, verbose=False)
    one_line_error(excinfo, tmp_path, "no original medical files")


def test_pubmedqa_without_data_dir_says_what_to_do(monkeypatch):
    monkeypatch.delenv("COURSE_DATA_DIR", raising=False)
    with pytest.raises(CourseError) as excinfo:
        data.load_dataset("pubmedqa", verbose=False)
    message = str(excinfo.value)
    assert "\n" not in message
    assert "no bundled sample" in message and "COURSE_DATA_DIR" in message


def test_a_bad_original_file_is_reported_not_skipped(tmp_path):
    folder = tmp_path / "financial_phrasebank"
    bad = _write(folder / "Sentences_AllAgree.txt", "Profit rose@up\n")
    with pytest.raises(CourseError) as excinfo:
        data.load_dataset("finance", data_dir=tmp_path, verbose=False)
    one_line_error(excinfo, bad, "line 1")


# ------------------------------------------------------------------ splits
def _records(n_per_class=(30, 60, 10)):
    rows = []
    for label, n in enumerate(n_per_class):
        rows += [{"text": f"sentence {label} number {i}", "label": label} for i in range(n)]
    return rows


def test_stratified_split_keeps_class_shares_and_is_reproducible():
    records = _records()
    a = data.split_records(records, seed=7)
    b = data.split_records(records, seed=7)
    assert [r["text"] for r in a["test"]] == [r["text"] for r in b["test"]]
    assert {k: len(v) for k, v in a.items()} == {"train": 70, "validation": 10, "test": 20}
    shares = {k: np.bincount([r["label"] for r in v], minlength=3) / len(v) for k, v in a.items()}
    for split in shares.values():
        assert np.abs(split - np.array([0.3, 0.6, 0.1])).max() <= 0.05
    assert data.check_no_leakage(a, ["text"])["text: train/test"] == 0


def test_qa_split_by_passage_even_when_titles_differ():
    records = []
    for p in range(10):
        for q in range(3):
            records.append({"id": f"{p}-{q}", "title": f"doc{p}-{q % 2}",  # two titles per passage
                            "context": f"passage number {p}", "question": f"question {q}?"})
    splits = data.split_records(records, stratify_key=None, group_key="title")
    assert sum(len(v) for v in splits.values()) == 30
    assert data.find_leaks(splits, ["context"]) == {"context: train/validation": 0,
                                                     "context: train/test": 0,
                                                     "context: validation/test": 0}


def test_fixed_test_ids_and_too_small_data():
    records = _records((20, 20, 20))
    for i, r in enumerate(records):
        r["id"] = str(i)
    splits = data.split_records(records, fixed_test_ids={"0", "25", "59"})
    assert sorted(r["id"] for r in splits["test"]) == ["0", "25", "59"]
    with pytest.raises(CourseError, match="every label needs at least 3"):
        data.split_records(_records((30, 30, 2)))
    with pytest.raises(CourseError, match="too few to split"):
        data.split_records(_records((3, 3, 3)))
    with pytest.raises(CourseError, match="passages are too few"):
        data.split_records([{"title": "a", "context": "x"}, {"title": "b", "context": "y"}],
                           stratify_key=None, group_key="title")


def test_find_leaks_counts_texts_in_two_splits():
    splits = {"train": [{"text": "Sales rose."}, {"text": "Sales fell"}],
              "test": [{"text": "sales ROSE"}]}
    assert data.find_leaks(splits) == {"text: train/test": 1}
    with pytest.raises(CourseError, match=r"text: train/test \(1\)"):
        data.check_no_leakage(splits)


# ------------------------------------------------------------------ every dataset, every source
def _load(name, source, **kwargs):
    if source == "files":
        return data.load_dataset(name, source="files", data_dir=DATA_DIR, verbose=False, **kwargs)
    return data.load_dataset(name, source=source, verbose=False, **kwargs)


SOURCES = [(name, "files") for name in data.DATASETS] + \
          [(name, "hub") for name in data.DATASETS] + \
          [(name, "bundled") for name in ("finance", "medical", "biomedical_qa")]


@pytest.mark.parametrize("name,source", SOURCES, ids=[f"{n}-{s}" for n, s in SOURCES])
def test_no_text_in_two_splits_for_every_dataset_and_source(name, source, hub_standin):
    if source == "bundled" and data.bundled_path(name) is None:
        pytest.fail(f"the bundled {name} sample is missing from data/")
    dsd = _load(name, source)
    assert list(dsd) == ["train", "validation", "test"]
    assert dsd.source.startswith(source)
    leaks = data.check_no_leakage(dsd, data.LEAKAGE_COLUMNS[name])
    assert set(leaks.values()) == {0}
    if name == "biomedical_qa":  # no passage (and no document) straddles two splits
        titles = {k: set(v["title"]) for k, v in dsd.items()}
        assert not titles["train"] & titles["test"] and not titles["train"] & titles["validation"]
    # same columns and label names whatever the source
    assert dsd["train"].features == sources._features(name)
    if name in ("finance", "medical", "pubmedqa"):
        labels = {"finance": data.FINANCE_LABELS, "medical": data.MEDICAL_LABELS,
                  "pubmedqa": data.PUBMEDQA_LABELS}[name]
        assert data.label_names(dsd) == labels
        assert all(n > 0 for n in data.label_counts(dsd["test"]).values())


def test_fpb_agreement_levels_from_files_and_hub(hub_standin):
    for source in ("files", "hub"):
        fifty = _load("finance", source, agreement="50")
        assert (fifty.report.read, fifty.report.duplicates, fifty.report.conflicts) == (39, 2, 2)
        assert set(fifty["train"]["topic"]) == {-1}  # FPB has no topic
    with pytest.raises(CourseError, match="no Sentences_75Agree.txt in the zip"):
        _load("finance", "hub", agreement="75")


def test_pubmedqa_files_use_the_official_test_ids():
    dsd = _load("pubmedqa", "files")
    truth = json.loads((DATA_DIR / "pubmedqa" / "test_ground_truth.json").read_text())
    assert sorted(dsd["test"]["id"]) == sorted(truth)
    assert len(dsd["train"]) + len(dsd["validation"]) == 24


def test_auto_order_files_then_hub_then_bundled(hub_standin, monkeypatch, capsys):
    monkeypatch.setenv("COURSE_PROFILE", "full")
    monkeypatch.setenv("COURSE_DATA_DIR", str(DATA_DIR))
    assert data.load_dataset("medical", verbose=False).source.startswith("files")
    monkeypatch.delenv("COURSE_DATA_DIR")
    assert data.load_dataset("medical", verbose=False).source.startswith("hub")
    monkeypatch.setattr(settings, "hub_reachable", lambda: False)
    dsd = data.load_dataset("finance")
    assert dsd.source.startswith("bundled")
    assert "fell back to the bundled sample (COURSE_DATA_DIR is not set; the Hub is " \
           "unreachable)" in capsys.readouterr().out
    monkeypatch.setenv("COURSE_PROFILE", "quick")  # the quick profile never asks the Hub
    monkeypatch.setattr(settings, "hub_reachable", lambda: pytest.fail("Hub asked"))
    assert data.load_dataset("finance").source.startswith("bundled")
    assert "note" not in capsys.readouterr().out
    # COURSE_DATA_DIR set but without this dataset: say so, then use the sample
    monkeypatch.setenv("COURSE_DATA_DIR", str(DATA_DIR / "pubmedqa"))
    assert data.load_dataset("finance").source.startswith("bundled")
    assert "note: fell back to the bundled sample (no original finance files under" \
        in capsys.readouterr().out


def test_hub_failures(hub_standin, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(CourseError, match=r"the Hub is off \(HF_HUB_OFFLINE=1\)"):
        data.load_dataset("finance", source="hub", verbose=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")

    def broken(repo_id, config=None):
        raise ConnectionError("connection reset")

    monkeypatch.setattr(sources, "hub_dataset", broken)
    with pytest.raises(CourseError, match="the Hub failed .ConnectionError: connection reset"):
        data.load_dataset("medical", source="hub", verbose=False)
    # a zip without the wanted file names the file that is missing
    empty_zip = tmp_path / "empty.zip"
    with zipfile.ZipFile(empty_zip, "w") as archive:
        archive.writestr("README.txt", "nothing here")
    monkeypatch.setattr(sources, "hub_file", lambda repo, filename: empty_zip)
    with pytest.raises(CourseError, match="no Sentences_AllAgree.txt in the zip"):
        data.load_dataset("finance", source="hub", verbose=False)


def test_medical_hub_rows_with_zero_based_labels():
    rows = [{"condition_label": i % 5, "medical_abstract": f"abstract {i}"} for i in range(10)]
    records, _ = formats.medical_from_rows(rows, "hub:x")
    assert records[0]["label"] == "neoplasms" and records[4]["label"] == data.MEDICAL_LABELS[4]


# ------------------------------------------------------------------ imbalance, lengths, tokenising
def test_class_weights_and_oversample():
    labels = [0] * 10 + [1] * 30 + [2] * 60
    weights = data.class_weights(labels, 3)
    np.testing.assert_allclose(weights, [100 / 30, 100 / 90, 100 / 180])
    counts = np.bincount(labels) * weights
    np.testing.assert_allclose(counts, counts[0])  # every class carries the same total weight
    assert data.class_weights([0, 0, 2], 3)[1] == 0.0  # absent class: 0 (nothing to balance)
    from sklearn.utils.class_weight import compute_class_weight

    np.testing.assert_allclose(data.class_weights(torch.tensor(labels)),
                               compute_class_weight("balanced", classes=np.arange(3), y=labels))
    for bad, words in [([], "no labels"), ([0, 1.5], "class ids"), ([0, 3], "0..2")]:
        with pytest.raises(CourseError, match=words):
            data.class_weights(bad, 3)

    import datasets

    ds = datasets.Dataset.from_dict({"text": [str(i) for i in range(100)], "label": labels})
    balanced = data.oversample(ds, seed=1)
    assert np.bincount(balanced["label"]).tolist() == [60, 60, 60]
    assert set(balanced["text"]) == set(ds["text"])  # nothing invented, nothing lost


def test_weighted_loss_is_the_mean_of_weighted_example_losses():
    class Model(torch.nn.Module):
        def forward(self, input_ids, attention_mask=None, labels=None):
            assert labels is None  # the model must not compute its own loss
            return {"logits": input_ids.float()}

    batch = {"input_ids": torch.tensor([[2.0, 0.0, 1.0], [0.0, 1.0, 3.0], [1.0, 1.0, 0.0]]),
             "labels": torch.tensor([0, 2, 2])}
    weights = [1.0, 2.0, 4.0]
    loss, outputs = data.weighted_loss(weights)(Model(), batch)
    per_example = torch.nn.functional.cross_entropy(batch["input_ids"], batch["labels"],
                                                    reduction="none")
    assert torch.isclose(loss, (torch.tensor([1.0, 4.0, 4.0]) * per_example).mean())
    # the batch's loss is the mean of its halves' losses, so splitting a batch between
    # accumulation steps or processes (equal shares, averaged) changes nothing;
    # PyTorch's weighted mean (divided by each part's weight sum) would
    halves = [data.weighted_loss(weights)(Model(), {k: v[i:j] for k, v in batch.items()})[0]
              for i, j in ((0, 1), (1, 3))]
    assert torch.isclose(loss, (halves[0] * 1 + halves[1] * 2) / 3)
    assert "logits" in outputs


def test_token_lengths_choose_max_length_and_tokenize(tokenizer):
    import datasets

    ds = datasets.Dataset.from_dict({"text": ["Sales rose.", "Net sales decreased by 12 % to "
                                              "EUR 41.2 mn in the third quarter of 2009."],
                                     "label": [2, 0]})
    lengths = data.token_lengths(ds, tokenizer)
    assert lengths.tolist() == [len(tokenizer(t)["input_ids"]) for t in ds["text"]]
    assert data.choose_max_length([10] * 99 + [500], coverage=0.99) == 16
    assert data.choose_max_length([600] * 10) == 512
    out = data.tokenize(ds, tokenizer, max_length=8)
    assert "labels" in out.column_names and "label" not in out.column_names
    assert max(len(ids) for ids in out["input_ids"]) == 8


def test_text_quality_flags_templates_and_near_duplicates():
    written = ["Profit rose sharply after the merger closed in May.",
               "The board cut the dividend, citing weak demand in Asia.",
               "Analysts expect flat sales for the rest of the year.",
               "Profit rose sharply after the merger closed in June."]
    quality = data.text_quality(written)
    assert quality["exact_duplicates"] == 0
    assert quality["near_duplicate_rate"] == 0.5  # the first and the last
    templated = [f"{c} reported net sales of EUR {n} mn in the {q} quarter."
                 for c in ("Acme", "Borealis", "Cobalt", "Dune") for n in (5, 7, 9)
                 for q in ("first", "second")]
    assert data.repeated_ngram_share(templated) > 0.5
    assert data.repeated_ngram_share(written[:3]) == 0.0


def test_shown_path_hides_this_machines_folders():
    """Reports and stored results name the repository's and the shared datasets' files the
    same way on every clone (a benchmark once stored /work/shared/... in the README)."""
    from course_lib import settings
    from course_lib.data.records import shown_path

    shared = settings.REPO_DIR.parent / "shared" / "datasets" / "fpb.txt"
    bundled = settings.REPO_DIR / "data" / "finance" / "finance_sample.csv"
    assert shown_path(f"{shared}: read 10") == "../shared/datasets/fpb.txt: read 10"
    assert shown_path(str(bundled)) == "data/finance/finance_sample.csv"
