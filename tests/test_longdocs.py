"""Truncation, chunking and pooling for documents longer than the window (course_lib.longdocs)."""

import numpy as np
import pytest

from course_lib import longdocs
from course_lib.settings import CourseError

DOC = list(range(100, 120))  # 20 content token ids


def test_short_documents_are_not_cut():
    for strategy in longdocs.TRUNCATIONS:
        assert longdocs.truncate_ids(DOC[:5], 8, strategy) == DOC[:5]


def test_head_tail_and_head_tail_keep_the_right_ends():
    assert longdocs.truncate_ids(DOC, 8, "head") == DOC[:8]
    assert longdocs.truncate_ids(DOC, 8, "tail") == DOC[-8:]
    # default split: a quarter of the budget from the head, the rest from the tail
    assert longdocs.truncate_ids(DOC, 8, "head_tail") == DOC[:2] + DOC[-6:]
    assert longdocs.truncate_ids(DOC, 8, "head_tail", head_tokens=5) == DOC[:5] + DOC[-3:]
    assert longdocs.truncate_ids(DOC, 8, "head_tail", head_tokens=8) == DOC[:8]
    assert longdocs.truncate_ids(DOC, 8, "head_tail", head_tokens=0) == DOC[-8:]


def test_bad_strategy_or_budget_is_one_clear_error():
    with pytest.raises(CourseError, match="not one of"):
        longdocs.truncate_ids(DOC, 8, "middle")
    with pytest.raises(CourseError, match="at least one token"):
        longdocs.truncate_ids(DOC, 0)
    with pytest.raises(CourseError, match="overlap"):
        longdocs.chunk_ids(DOC, 8, overlap=8)


@pytest.mark.parametrize("length,budget,overlap", [(20, 8, 0), (20, 8, 3), (8, 8, 2), (9, 8, 2),
                                                    (1, 8, 0), (57, 10, 4)])
def test_chunks_cover_the_document_with_the_overlap(length, budget, overlap):
    ids = list(range(length))
    windows = longdocs.chunk_ids(ids, budget, overlap)
    assert all(0 < len(w) <= budget for w in windows)
    assert windows[0][0] == 0 and windows[-1][-1] == length - 1
    assert sorted(set(i for w in windows for i in w)) == ids  # every token is somewhere
    for a, b in zip(windows, windows[1:]):
        assert a[-overlap:] == b[:overlap] if overlap else a[-1] + 1 == b[0]
    assert len(windows) == longdocs.count_chunks(length, budget, overlap)


def test_encoded_windows_are_well_formed_bert_inputs(tokenizer):
    text = " ".join(f"word{i}" for i in range(40)) + " conclusion"
    enc = longdocs.encode_truncated(tokenizer, [text, "short text"], 16, "head_tail")
    for ids in enc["input_ids"]:
        assert len(ids) <= 16
        assert ids[0] == tokenizer.cls_token_id and ids[-1] == tokenizer.sep_token_id
    # head+tail keeps the last word of the document; head-only loses it
    last = tokenizer("conclusion", add_special_tokens=False)["input_ids"]
    assert enc["input_ids"][0][-1 - len(last):-1] == last
    head = longdocs.encode_truncated(tokenizer, [text], 16, "head")["input_ids"][0]
    assert head[-1 - len(last):-1] != last
    chunks = longdocs.encode_chunks(tokenizer, [text, "short text"], 16, overlap=4)
    assert chunks["doc_id"][-1] == 1 and chunks["doc_id"].count(1) == 1
    assert all(len(ids) <= 16 for ids in chunks["input_ids"])
    assert chunks["attention_mask"][0] == [1] * len(chunks["input_ids"][0])


def test_tokenize_long_gives_each_window_its_documents_label(tokenizer):
    import datasets

    ds = datasets.Dataset.from_dict({"text": ["alpha " * 30, "beta gamma"], "label": [3, 1]})
    windows = longdocs.tokenize_long(ds, tokenizer, strategy="chunks", max_length=12)
    assert windows["labels"] == [3] * (len(windows) - 1) + [1]
    assert windows["doc_id"] == [0] * (len(windows) - 1) + [1]
    single = longdocs.tokenize_long(ds, tokenizer, strategy="head", max_length=12)
    assert len(single) == 2 and single["doc_id"] == [0, 1]
    with pytest.raises(CourseError, match="column 'body'"):
        longdocs.tokenize_long(ds, tokenizer, text_column="body")


def test_pooling_windows_into_documents():
    logits = np.log(np.array([[0.8, 0.2], [0.4, 0.6], [0.45, 0.55], [0.1, 0.9]]))
    docs = [0, 0, 0, 1]
    mean = longdocs.pool_windows(logits, docs, "mean")
    assert np.allclose(mean[0], [0.55, 0.45]) and np.allclose(mean[1], [0.1, 0.9])
    # one confident window decides under max pooling, not under mean pooling
    assert longdocs.pool_windows(logits, docs, "max")[0].argmax() == 0
    assert mean[0].argmax() == 0
    assert np.allclose(longdocs.pool_windows(logits, docs, "logits").sum(1), 1.0)
    with pytest.raises(CourseError, match="one id per window"):
        longdocs.pool_windows(logits, [0, 1], "mean")
    with pytest.raises(CourseError, match="no window"):
        longdocs.pool_windows(logits, [0, 0, 2, 2], "mean")


def test_window_stats_counts_what_is_lost(tokenizer):
    texts = ["one two three four five six seven eight nine ten", "one"]
    stats = longdocs.window_stats(tokenizer, texts, max_length=7, overlap=1)
    assert stats["documents"] == 2 and stats["truncated_share"] == 0.5
    assert stats["tokens_lost_share"] == pytest.approx(5 / 11)
    assert stats["windows_per_document"] == pytest.approx((3 + 1) / 2)
