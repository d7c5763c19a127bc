"""Gradient x input saliency on a tiny BERT (course_lib.saliency)."""

import numpy as np
import pytest
import torch

from course_lib import saliency
from course_lib.settings import CourseError, seed_everything

LABELS = ["negative", "neutral", "positive"]


@pytest.fixture(scope="module")
def tiny_model(tokenizer):
    from transformers import BertConfig, BertForSequenceClassification

    seed_everything(0)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=16, num_hidden_layers=1,
                        num_attention_heads=2, intermediate_size=32, num_labels=3,
                        id2label=dict(enumerate(LABELS)),
                        label2id={n: i for i, n in enumerate(LABELS)})
    model = BertForSequenceClassification(config)
    model.train()  # the saliency call must switch to eval and back
    return model


def test_one_score_per_token_and_the_predicted_label(tiny_model, tokenizer):
    s = saliency.gradient_x_input(tiny_model, tokenizer, "Profit rose to EUR 13.9 mn.")
    assert s.tokens[0] == "[CLS]" and s.tokens[-1] == "[SEP]"
    assert s.scores.shape == (len(s.tokens),) and np.isfinite(s.scores).all()
    assert s.label in LABELS and s.probability == max(s.probabilities.values())
    assert abs(sum(s.probabilities.values()) - 1) < 1e-5
    assert tiny_model.training, "the model's training mode must be restored"
    assert all(p.grad is None for p in tiny_model.parameters()), "no gradients left behind"
    words = [w for w, _ in s.words()]
    assert "13" in words and "[CLS]" in words
    assert len(s.top(3)) == 3 and all(t not in ("[CLS]", "[SEP]") for t, _ in s.top(3))


def test_a_token_with_a_zero_embedding_gets_zero_saliency(tiny_model, tokenizer):
    zero_id = tokenizer.convert_tokens_to_ids("rose")
    embedding = tiny_model.get_input_embeddings().weight
    saved = embedding.data[zero_id].clone()
    try:
        embedding.data[zero_id] = 0.0
        s = saliency.gradient_x_input(tiny_model, tokenizer, "profit rose", target="positive")
    finally:
        embedding.data[zero_id] = saved
    assert s.label == "positive"
    assert s.scores[s.tokens.index("rose")] == 0.0
    assert s.scores[s.tokens.index("profit")] != 0.0


def test_targets_by_name_or_index_and_bad_targets(tiny_model, tokenizer):
    by_name = saliency.gradient_x_input(tiny_model, tokenizer, "profit fell", target="negative")
    by_index = saliency.gradient_x_input(tiny_model, tokenizer, "profit fell", target=0)
    assert by_name.label == by_index.label == "negative"
    assert np.allclose(by_name.scores, by_index.scores)
    with pytest.raises(CourseError, match="not one of the model's labels"):
        saliency.gradient_x_input(tiny_model, tokenizer, "x", target="bullish")
    with pytest.raises(CourseError, match="out of range"):
        saliency.gradient_x_input(tiny_model, tokenizer, "x", target=7)


def test_predict_texts_and_compare_edit(tiny_model, tokenizer):
    probs = saliency.predict_texts(tiny_model, tokenizer, ["a", "b c d", "e"], batch_size=2)
    assert probs.shape == (3, 3) and np.allclose(probs.sum(1), 1, atol=1e-5)
    with torch.inference_mode():  # padding must not change a text's prediction
        alone = saliency.predict_texts(tiny_model, tokenizer, ["a"])
    assert np.allclose(alone[0], probs[0], atol=1e-5)
    result = saliency.compare_edit(tiny_model, tokenizer, "profit rose", "profit rose")
    assert result["changed"] is False and result["original"] == result["edited"]
    assert set(result["original_probs"]) == set(LABELS)


def test_word_spans_group_pieces_and_skip_special_tokens():
    tokens = ["[CLS]", "ebit", "##da", "rose", "13", ".", "9", "[SEP]", "[PAD]"]
    assert saliency.word_spans(tokens) == [[1, 2], [3], [4], [5], [6]]


def test_deletion_check_reports_two_change_rates(tiny_model, tokenizer):
    texts = ["profit rose sharply", "sales fell in the quarter", "the board met", "x"]
    result = saliency.deletion_check(tiny_model, tokenizer, texts)
    assert result["texts"] == 3  # "x" has a single word: nothing to compare
    for key in ("top_word_changes", "random_word_changes", "top_word_beats_average"):
        assert 0.0 <= result[key] <= 1.0
    for key in ("top_word_prob_drop", "random_word_prob_drop"):
        assert -1.0 <= result[key] <= 1.0
    assert tiny_model.training


def test_the_random_baseline_is_the_exact_average_over_every_word(tiny_model, tokenizer):
    text = "sales fell in the quarter"
    result = saliency.deletion_check(tiny_model, tokenizer, [text])
    ids = tokenizer(text)["input_ids"]
    spans = saliency.word_spans(tokenizer.convert_ids_to_tokens(ids))
    pad = tokenizer.pad_token_id
    before = saliency._predict_ids(tiny_model, [ids], pad)[0]
    label = before.argmax()
    drops = [before[label] - saliency._predict_ids(
        tiny_model, [[t for i, t in enumerate(ids) if i not in span]], pad)[0][label]
        for span in spans]
    assert result["random_word_prob_drop"] == pytest.approx(np.mean(drops), abs=1e-6)
    assert result == saliency.deletion_check(tiny_model, tokenizer, [text])  # no random draw
