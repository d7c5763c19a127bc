"""Documents longer than the window: truncation, chunking and pooling (course_lib.longdocs),
and long-document question answering: which windows train, and retrieve-then-read
(course_lib.qa.features / course_lib.qa.retrieval)."""

import numpy as np
import pytest
import torch

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


# ------------------------------------------- long-document question answering
# Paragraphs on unrelated topics: an "article" of a few thousand tokens, in which a
# question's answer sits in exactly one place.
TOPICS = {
    "baking": ("The bakers of the old mill kneaded rye dough before dawn. They added caraway "
               "seeds and a spoon of dark honey to every loaf. The ovens were fired with beech "
               "wood, and the crust cracked as the bread cooled on the racks."),
    "football": ("The football club lost the cup final after a penalty shoot-out. Its "
                 "goalkeeper saved two kicks, but the captain hit the crossbar. Forty thousand "
                 "supporters sang in the rain until the trophy was lifted."),
    "volcano": ("The volcano on the island erupted for eleven days. Lava flows destroyed the "
                "coastal road, and ash closed the airport. Geologists measured sulphur dioxide "
                "from a research boat anchored offshore."),
    "violin": ("The violin maker carved the scroll from seasoned maple. He varnished the body "
               "with thirty thin coats of amber resin. A famous soloist bought the instrument "
               "after playing a single sonata on it."),
    "vaccine": ("The vaccine trial enrolled four thousand nurses in three hospitals. Two doses "
                "were given four weeks apart. Fever after the second dose was the most common "
                "side effect, and it lasted about a day."),
    "glacier": ("The glacier retreated by sixty metres in one summer. Meltwater filled a new "
                "lake at its snout. Surveyors placed steel stakes in the ice to track its flow "
                "every month."),
    "chess": ("The chess tournament lasted nine rounds. The winner opened every game with the "
              "queen's pawn and never lost with the white pieces. Her final game ended in a "
              "draw after a long rook endgame."),
    "bees": ("The beekeeper moved her hives to the heather moor in August. The bees produced a "
             "thick, jelly-like honey. Varroa mites were treated with oxalic acid in the "
             "winter."),
}
QUESTIONS = {
    "baking": ("What did the bakers add to every loaf?", "caraway seeds and a spoon of dark honey"),
    "volcano": ("How many days did the volcano erupt?", "eleven days"),
    "vaccine": ("What was the most common side effect of the vaccine?", "Fever"),
    "chess": ("How did the winner open every chess game?", "with the queen's pawn"),
    "bees": ("What were the varroa mites treated with?", "oxalic acid"),
}


def long_article(seed: int = 0, repeats: int = 10) -> str:
    """The topic paragraphs, shuffled, each topic's filler repeated: ~1,500 tokens, the
    question topics appearing once."""
    import random

    rng = random.Random(seed)
    filler = [t for t in TOPICS if t not in QUESTIONS]
    paragraphs = [TOPICS[t] for t in QUESTIONS] + [TOPICS[t] for t in filler] * repeats
    rng.shuffle(paragraphs)
    return "\n\n".join(paragraphs)


def long_article_squad(path, seed: int = 0):
    """A SQuAD file of one long article and its five questions."""
    import json

    context = long_article(seed)
    qas = [{"id": f"{seed}-{topic}", "question": question,
            "answers": [{"text": answer, "answer_start": context.index(answer)}]}
           for topic, (question, answer) in QUESTIONS.items()]
    path.write_text(json.dumps({"data": [{"title": f"article {seed}", "paragraphs": [
        {"context": context, "qas": qas}]}]}))
    return path


def _long_features(tokenizer, max_length=96, stride=24, labels=True):
    from course_lib import qa

    context = long_article(0)
    records = [{"id": topic, "question": question, "context": context,
                "answers": {"text": [answer], "answer_start": [context.index(answer)]}}
               for topic, (question, answer) in QUESTIONS.items()]
    return qa.prepare_features(records, tokenizer, max_length, stride, labels=labels)


def test_training_windows_keep_every_answer_and_a_share_of_the_rest(tokenizer):
    from course_lib import qa

    features = _long_features(tokenizer)
    starts = np.array(features.dataset["start_positions"])
    positives, negatives = int((starts > 0).sum()), int((starts == 0).sum())
    assert positives >= len(QUESTIONS) and negatives > 8 * positives  # a long article
    assert len(qa.training_windows(features, 1.0)) == len(features)  # the standard recipe
    only_answers = qa.training_windows(features, 0.0)
    assert len(only_answers) == positives and min(only_answers["start_positions"]) > 0
    tenth = qa.training_windows(features, 0.1, seed=3)
    assert tenth["input_ids"] == qa.training_windows(features, 0.1, seed=3)["input_ids"]
    kept_negatives = sum(s == 0 for s in tenth["start_positions"])
    assert 0 < kept_negatives < 0.3 * negatives
    assert sum(s > 0 for s in tenth["start_positions"]) == positives  # answers never dropped
    with pytest.raises(CourseError, match="negative_share"):
        qa.training_windows(features, 1.5)


def test_ranked_negatives_are_the_top_ranked_windows_without_the_answer(tokenizer):
    from course_lib import qa

    features = _long_features(tokenizer)
    starts = features.dataset["start_positions"]
    ranked = {ex: list(reversed(features.windows_of(ex))) for ex in range(len(QUESTIONS))}
    kept = qa.training_windows(features, 0.1, ranked=ranked)
    expected = set(i for i, s in enumerate(starts) if s > 0)
    for windows in ranked.values():
        negatives = [w for w in windows if starts[w] == 0]
        expected.update(negatives[:round(0.1 * len(negatives))])
    assert kept["input_ids"] == [features.dataset[w]["input_ids"] for w in sorted(expected)]


class BagOfWords(torch.nn.Module):
    """A context-free "encoder": each token's vector is its own embedding, so a span's
    mean-pooled embedding can be computed by hand."""

    def __init__(self, vocab: int, width: int = 16):
        super().__init__()
        self.embed = torch.nn.Embedding(vocab, width)

    def forward(self, input_ids, attention_mask=None, token_type_ids=None):
        return {"last_hidden_state": self.embed(input_ids)}


def test_a_window_is_scored_by_the_mean_of_its_own_tokens(tokenizer):
    """The article is encoded once in pieces; a window's embedding is the mean of the token
    vectors inside its characters, exactly (checked with a context-free encoder)."""
    from course_lib.qa import retrieval

    torch.manual_seed(0)
    encoder = BagOfWords(tokenizer.vocab_size)
    features = _long_features(tokenizer, labels=False)
    ranking = retrieval.rank_windows(features, encoder, tokenizer, chunk_tokens=40,
                                     span_tokens=None)
    weights = encoder.embed.weight.detach().numpy()
    for w in (0, 7, len(features) - 1):
        ex = features.example_index[w]
        ids = [i for i, o in zip(features.dataset[w]["input_ids"], features.offsets[w])
               if o is not None]
        window = weights[ids].mean(0)
        question = weights[tokenizer(features.examples[ex]["question"])["input_ids"]].mean(0)
        cosine = window @ question / np.linalg.norm(window) / np.linalg.norm(question)
        assert ranking.scores[w] == pytest.approx(cosine, abs=1e-5)
    assert ranking.articles == 1  # five questions, one article: encoded once
    assert sorted(ranking.order) == list(range(len(QUESTIONS)))
    assert all(sorted(ws) == features.windows_of(ex) for ex, ws in ranking.order.items())


def test_retrieval_ranks_the_window_with_the_answer_first(tokenizer):
    """The packaged sentence-embedding model puts, for every question, a window that holds
    its answer at the top of an article of unrelated paragraphs."""
    from course_lib.qa import retrieval

    features = _long_features(tokenizer, labels=False)
    retriever_tokenizer, encoder = retrieval.load_retriever()
    ranking = retrieval.rank_windows(features, encoder, retriever_tokenizer)
    holding = retrieval.answer_windows(features)
    for ex, windows in holding.items():
        assert ranking.order[ex][0] in windows, features.examples[ex]["question"]
    assert retrieval.recall_at(ranking, features, ks=(1, 2)) == {1: 1.0, 2: 1.0}
    kept = features.select(ranking.top(2))
    assert len(kept) == 2 * len(QUESTIONS) < len(features)
    assert sorted(set(kept.example_index)) == list(range(len(QUESTIONS)))


def test_compare_retrieval_reports_both_ways_of_reading(tokenizer, tiny_qa_model):
    from transformers import AutoModelForQuestionAnswering

    from course_lib.qa import retrieval

    model = AutoModelForQuestionAnswering.from_pretrained(tiny_qa_model)
    features = _long_features(tokenizer, labels=False)
    encoder = BagOfWords(tokenizer.vocab_size)
    result = retrieval.compare_retrieval(model, features, encoder, tokenizer, top_k=3,
                                         answer_windows_row=True)
    every, top, gold = result["every_window"], result["top_3"], result["answer_windows"]
    assert every["windows"] == len(features) and top["windows"] == 3 * len(QUESTIONS)
    holding = retrieval.answer_windows(features)
    assert gold["windows"] == sum(map(len, holding.values())) < len(features)
    assert "answer_windows" not in retrieval.compare_retrieval(model, features, encoder,
                                                               tokenizer, top_k=3)
    for row in (every, top, gold):
        assert 0 <= row["f1"] <= 100 and 0 <= row["exact_match"] <= 100 and row["seconds"] > 0
    assert 0 <= top["recall"] <= 1 and 0 < top["retrieval_seconds"] <= top["seconds"]


def test_questions_left_without_windows_answer_nothing(tokenizer):
    from course_lib import qa

    features = _long_features(tokenizer)
    first = features.windows_of(0)[:2]
    kept = features.select(first)
    start, end = qa.gold_logits(kept)
    predictions = qa.postprocess(kept, start, end)
    assert set(predictions) == {ex["id"] for ex in features.examples}
    assert all(predictions[r["id"]]["text"] == "" for r in features.examples[1:])
