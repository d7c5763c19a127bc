"""Unit tests for course_lib.heads: poolings, classifier, task embeddings, domain tokens,
and the one cache of frozen lower layers (with the top layers trained on it).

A tiny randomly initialised BERT (2 layers, 32 wide) with the course tokenizer's
vocabulary keeps these fast; the properties tested do not depend on the weights.
"""

import pytest
import torch
from transformers import BertConfig, BertForSequenceClassification, BertModel

from course_lib import backbones, heads, settings, training
from course_lib.settings import CourseError

HIDDEN = 32


def tiny_encoder(seed: int = 0) -> BertModel:
    settings.seed_everything(seed)
    config = BertConfig(vocab_size=30522, hidden_size=HIDDEN, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64)
    return BertModel(config).eval()


@pytest.fixture(scope="module")
def tokenizer():
    return backbones.load_tokenizer()


def padded(tokenizer, text: str, extra: int):
    """``text`` as a batch of one, padded with ``extra`` more positions."""
    enc = tokenizer([text], return_tensors="pt")
    ids, mask = enc["input_ids"], enc["attention_mask"]
    pad_ids = torch.full((1, extra), tokenizer.pad_token_id, dtype=torch.long)
    return torch.cat([ids, pad_ids], 1), torch.cat([mask, torch.zeros_like(pad_ids)], 1)


@pytest.mark.parametrize("name", list(heads.POOLINGS))
def test_pooling_ignores_padding(tokenizer, name):
    encoder = heads.TokenEncoder(tiny_encoder())
    pool = heads.make_pooling(name, HIDDEN)
    with torch.no_grad():
        outs = []
        for extra in (0, 3, 25):
            ids, mask = padded(tokenizer, "Operating profit rose to EUR 13.1 mn.", extra)
            outs.append(pool(encoder(ids, mask), mask))
    for out in outs[1:]:
        torch.testing.assert_close(out, outs[0], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", list(heads.POOLINGS))
def test_classifier_logits_ignore_padding(tokenizer, name):
    model = heads.PooledClassifier(tiny_encoder(), name, num_labels=3).eval()
    with torch.no_grad():
        short = model(*padded(tokenizer, "Sales fell sharply.", 0))["logits"]
        long = model(*padded(tokenizer, "Sales fell sharply.", 40))["logits"]
    torch.testing.assert_close(short, long, atol=1e-5, rtol=1e-5)


def test_masked_poolings_by_hand():
    hidden = torch.tensor([[[1.0, -2.0], [3.0, 4.0], [100.0, 100.0]]])
    mask = torch.tensor([[1, 1, 0]])
    torch.testing.assert_close(heads.MeanPooling()(hidden, mask), torch.tensor([[2.0, 1.0]]))
    torch.testing.assert_close(heads.MaxPooling()(hidden, mask), torch.tensor([[3.0, 4.0]]))
    torch.testing.assert_close(heads.CLSPooling()(hidden, mask), torch.tensor([[1.0, -2.0]]))


def test_attention_weights_are_a_distribution_over_real_tokens():
    settings.seed_everything(0)
    pool = heads.AttentionPooling(HIDDEN)
    hidden = torch.randn(2, 6, HIDDEN)
    mask = torch.tensor([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]])
    weights = pool.weights(hidden, mask)
    assert torch.all(weights[0, 4:] == 0)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2))


def test_unknown_pooling_is_a_course_error():
    with pytest.raises(CourseError, match="pooling"):
        heads.make_pooling("median", HIDDEN)


def test_classifier_returns_loss_only_with_labels(tokenizer):
    model = heads.PooledClassifier(tiny_encoder(), "attention", labels=["a", "b", "c"])
    ids, mask = padded(tokenizer, "Net sales grew.", 2)
    out = model(ids, mask)
    assert set(out) == {"logits"} and out["logits"].shape == (1, 3)
    out = model(ids, mask, labels=torch.tensor([2]))
    assert out["loss"].ndim == 0 and out["loss"].requires_grad


def test_head_weights_come_from_the_seed_and_leave_the_global_stream_alone():
    """Regression (issue 14, item 8): the constructor reseeded the global RNG (to 42 by
    default), so building a model mid-notebook reset every random stream."""
    first, second = tiny_encoder(), tiny_encoder()
    torch.manual_seed(123)
    before = torch.get_rng_state()
    a = heads.PooledClassifier(first, "attention", num_labels=3, seed=7)
    assert torch.equal(torch.get_rng_state(), before)
    b = heads.PooledClassifier(second, "attention", num_labels=3, seed=7)
    torch.testing.assert_close(a.head.linear.weight, b.head.linear.weight)
    torch.testing.assert_close(a.pooling.score.weight, b.pooling.score.weight)
    torch.manual_seed(123)
    c = heads.PooledClassifier(first, "attention", num_labels=3)  # no seed: the global stream
    assert not torch.equal(torch.get_rng_state(), before)
    assert not torch.equal(c.head.linear.weight, a.head.linear.weight)


def test_task_embeddings_start_at_the_plain_backbone(tokenizer):
    backbone = tiny_encoder()
    plain = heads.TokenEncoder(backbone)
    transformed = heads.TokenEncoder(backbone,
                                     input_transform=heads.TaskEmbeddingTransform(HIDDEN))
    ids, mask = padded(tokenizer, "The company issued a profit warning.", 4)
    with torch.no_grad():
        torch.testing.assert_close(transformed(ids, mask), plain(ids, mask), atol=1e-6, rtol=0)
        settings.seed_everything(0)
        random_start = heads.TokenEncoder(
            backbone, input_transform=heads.TaskEmbeddingTransform(HIDDEN, identity_init=False))
        assert (random_start(ids, mask) - plain(ids, mask)).abs().max() > 0.1


def test_task_embedding_classifier_matches_plain_classifier_before_training(tokenizer):
    plain = heads.PooledClassifier(tiny_encoder(), "mean", num_labels=3, seed=1).eval()
    with_te = heads.PooledClassifier(
        heads.TokenEncoder(tiny_encoder(), input_transform=heads.TaskEmbeddingTransform(HIDDEN)),
        "mean", num_labels=3, seed=1).eval()
    ids, mask = padded(tokenizer, "Orders declined in the quarter.", 3)
    with torch.no_grad():
        torch.testing.assert_close(with_te(ids, mask)["logits"], plain(ids, mask)["logits"])


def test_domain_tokens_start_at_the_mean_of_their_pieces(tokenizer):
    tok = backbones.load_tokenizer()  # a fresh copy: adding tokens changes it
    model = tiny_encoder()
    old = model.get_input_embeddings().weight.detach().clone()
    old_ids = {w: tok(w, add_special_tokens=False)["input_ids"] for w in ("ebitda", "euribor")}
    report = heads.add_domain_tokens(tok, model, ["EBITDA", "euribor", "margin", "ebitda"])
    assert report.words == ["ebitda", "euribor"]
    assert report.skipped == {"margin": "already one token"}
    assert report.pieces["ebitda"] == ["e", "##bit", "##da"]
    weight = model.get_input_embeddings().weight
    assert weight.shape[0] == len(tok) == 30524
    for word, ids in old_ids.items():
        torch.testing.assert_close(weight[report.token_ids[word]], old[ids].mean(0))
    torch.testing.assert_close(weight[:30522], old)  # the old rows are untouched
    assert tok.tokenize("EBITDA rose, debt-to-ebitda fell") == [
        "ebitda", "rose", ",", "debt", "-", "to", "-", "ebitda", "fell"]
    assert tok.tokenize("ebitdas") == ["e", "##bit", "##das"]  # whole words only
    assert heads.pieces_per_word(tok, ["ebitda", "euribor"]) == {"ebitda": 1, "euribor": 1}


def test_domain_tokens_default_resize_is_not_the_mean_of_pieces():
    tok = backbones.load_tokenizer()
    model = tiny_encoder()
    old = model.get_input_embeddings().weight.detach().clone()
    before = torch.get_rng_state()
    report = heads.add_domain_tokens(tok, model, ["ebitda"], init="resize_default", seed=3)
    assert torch.equal(torch.get_rng_state(), before)  # the seed draws on a forked stream
    new_row = model.get_input_embeddings().weight[report.token_ids["ebitda"]]
    pieces = old[tok.convert_tokens_to_ids(["e", "##bit", "##da"])].mean(0)
    assert not torch.allclose(new_row, pieces, atol=1e-3)


def test_domain_token_errors():
    tok = backbones.load_tokenizer()
    with pytest.raises(CourseError, match="spaces"):
        heads.add_domain_tokens(tok, tiny_encoder(), ["net sales"])
    with pytest.raises(CourseError, match="init"):
        heads.add_domain_tokens(tok, tiny_encoder(), ["ebitda"], init="zeros")
    with pytest.raises(CourseError, match="resize_token_embeddings"):
        heads.add_domain_tokens(tok, torch.nn.Linear(2, 2), ["ebitda"])


def test_split_words_finds_words_cut_into_many_pieces(tokenizer):
    found = heads.split_words(["EBITDA and EBITDA margin", "Euribor rose; the margin held."],
                              tokenizer, min_pieces=3)
    assert [(w, n) for w, n, _ in found] == [("ebitda", 2), ("euribor", 1)]


def test_cached_states_reproduce_the_full_forward(tokenizer):
    backbone = tiny_encoder()
    texts = ["Profit rose.", "The board proposes a dividend of EUR 0.42 per share."]
    enc = tokenizer(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        full = heads.TokenEncoder(backbone)(enc["input_ids"], enc["attention_mask"])
    encoder = heads.TokenEncoder(backbone, frozen_layers=1)
    rows = [{"input_ids": enc["input_ids"][i][enc["attention_mask"][i] == 1],
             "attention_mask": enc["attention_mask"][i][enc["attention_mask"][i] == 1]}
            for i in range(2)]
    cached = heads.cache_hidden_states(backbone, rows, 1, batch_size=1)
    assert cached[0]["hidden_states"].shape == (len(rows[0]["input_ids"]), HIDDEN)
    with torch.no_grad():
        for i, example in enumerate(cached):
            top = encoder.top_layers(example["hidden_states"][None],
                                     example["attention_mask"][None])
            n = len(example["input_ids"])
            torch.testing.assert_close(top[0], full[i, :n], atol=1e-5, rtol=1e-5)


def tiny_classifier(seed: int = 0) -> BertForSequenceClassification:
    settings.seed_everything(seed)
    config = BertConfig(vocab_size=100, hidden_size=HIDDEN, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=64,
                        num_labels=3)
    return BertForSequenceClassification(config).eval()


def token_rows(n: int = 7) -> list[dict]:
    generator = torch.Generator().manual_seed(1)
    lengths = torch.randint(3, 12, (n,), generator=generator).tolist()
    return [{"input_ids": torch.randint(5, 100, (k,), generator=generator).tolist(),
             "attention_mask": [1] * k, "token_type_ids": [0] * k, "labels": i % 3}
            for i, k in enumerate(lengths)]


@pytest.mark.parametrize("from_layer", [0, 1, 2])
def test_top_layers_on_cached_states_match_the_whole_model(from_layer):
    model = tiny_classifier()
    rows = token_rows()
    collate = training.PadCollator(0)
    padded_batch = collate([{k: torch.tensor(v) for k, v in row.items() if k != "labels"}
                            for row in rows])
    with torch.no_grad():
        expected = model(**padded_batch).logits  # one padded batch: the masks must do their job
    cached = heads.cache_hidden_states(model, rows, from_layer, batch_size=3)
    assert [len(c["hidden_states"]) for c in cached] == [len(r["input_ids"]) for r in rows]
    assert [int(c["labels"]) for c in cached] == [r["labels"] for r in rows]  # columns kept
    top = heads.TopLayers(model, from_layer).eval()
    inputs = collate([{k: c[k] for k in ("hidden_states", "attention_mask")} for c in cached])
    with torch.no_grad():
        got = top(**inputs)["logits"]
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)
    shared = {id(p) for p in model.parameters()}
    assert {id(p) for p in top.parameters()} <= shared  # it trains the model's own modules
    assert not model.training  # caching left the model in the mode it found it


def test_top_layers_mean_pooling_and_errors():
    model = tiny_classifier()
    cached = heads.cache_hidden_states(model, token_rows(3), 1)
    top = heads.TopLayers(model, 1, pooling="mean").eval()
    example = cached[0]
    with torch.no_grad():
        states = heads.run_layers(top.layers, model.config, example["hidden_states"][None],
                                  example["attention_mask"][None])
        expected = model.classifier(states.mean(1))
        got = top(example["hidden_states"][None], example["attention_mask"][None])["logits"]
    torch.testing.assert_close(got, expected)
    with pytest.raises(CourseError, match="layers"):
        heads.cache_hidden_states(model, token_rows(3), 3)
    with pytest.raises(CourseError, match="from_layer"):
        heads.TopLayers(model, 3)
    with pytest.raises(CourseError, match="pooling"):
        heads.TopLayers(model, 1, pooling="max")


def test_trainer_trains_top_layers_on_cached_states():
    model = tiny_classifier()
    cached = heads.cache_hidden_states(model, token_rows(16), 1)
    bottom = {n: p.detach().clone() for n, p in model.named_parameters()
              if not n.startswith(("bert.encoder.layer.1.", "bert.pooler", "classifier"))}
    top = heads.TopLayers(model, 1)
    config = training.TrainingConfig(epochs=2, batch_size=8, learning_rate=1e-2,
                                     eval_every=None, progress=False, verbose=False)
    trainer = training.Trainer(top, config, train_dataset=cached, label_keys=("labels",))
    trainer.train()
    preds = trainer.predict(cached)
    assert preds.logits.shape == (16, 3) and set(preds.labels) == {"labels"}
    for name, value in bottom.items():  # the frozen bottom is not part of the trained model
        assert torch.equal(value, dict(model.named_parameters())[name]), name


def test_sentence_embeddings_do_not_depend_on_the_batch(tokenizer):
    backbone = tiny_encoder()
    texts = ["Profit rose.", "The board proposes a dividend of EUR 0.42 per share.",
             "Sales fell sharply in the quarter."]
    together = heads.sentence_embeddings(backbone, tokenizer, texts, batch_size=2)
    assert together.shape == (3, HIDDEN)
    assert not backbone.training  # regression: an eval-mode backbone came back in train mode
    encoder = heads.TokenEncoder(backbone)
    for i, text in enumerate(texts):  # each alone: no padding at all
        enc = tokenizer([text], return_tensors="pt")
        with torch.no_grad():
            alone = heads.MeanPooling()(encoder(enc["input_ids"], enc["attention_mask"]),
                                        enc["attention_mask"])[0]
        torch.testing.assert_close(together[i], alone, atol=1e-5, rtol=1e-5)
    with pytest.raises(CourseError, match="input transform"):
        heads.TokenEncoder(backbone, input_transform=heads.TaskEmbeddingTransform(HIDDEN),
                           frozen_layers=1)(attention_mask=torch.ones(1, 2, dtype=torch.long),
                                            hidden_states=torch.zeros(1, 2, HIDDEN))


def test_cached_states_need_a_frozen_bottom():
    """Cached embeddings under frozen_layers=0 would silently stop trainable embeddings."""
    encoder = heads.TokenEncoder(tiny_encoder())
    with pytest.raises(CourseError, match="nothing is frozen"):
        encoder(attention_mask=torch.ones(1, 2, dtype=torch.long),
                hidden_states=torch.zeros(1, 2, HIDDEN))


def test_frozen_layers_leave_only_the_top_trainable():
    backbone = tiny_encoder()
    model = heads.PooledClassifier(heads.TokenEncoder(backbone, frozen_layers=2), "attention",
                                   num_labels=3)
    trainable, _ = backbones.count_parameters(model)
    assert trainable == (HIDDEN + 1) + (HIDDEN * 3 + 3)  # attention scorer + head
    with pytest.raises(CourseError, match="frozen_layers"):
        heads.TokenEncoder(tiny_encoder(), frozen_layers=3)


def test_trainer_trains_a_pooled_classifier_on_cached_states(tokenizer):
    texts = ["Profit rose.", "Sales fell.", "Orders were flat.", "Margins widened."] * 4
    labels = [2, 0, 1, 2] * 4
    rows = [{**{k: torch.tensor(v) for k, v in tokenizer(t).items()}, "labels": torch.tensor(y)}
            for t, y in zip(texts, labels)]
    encoder = heads.TokenEncoder(tiny_encoder(), frozen_layers=2)
    cached = heads.cache_hidden_states(encoder.backbone, rows, encoder.frozen_layers)
    model = heads.PooledClassifier(encoder, "attention", num_labels=3)
    config = training.TrainingConfig(epochs=2, batch_size=8, learning_rate=1e-2, progress=False,
                                     verbose=False)
    trainer = training.Trainer(model, config, train_dataset=cached, eval_dataset=cached,
                               label_keys=("labels",))
    history = trainer.train()
    assert len(history.evals) == 2
    preds = trainer.predict(cached)
    assert preds.logits.shape == (16, 3) and set(preds.labels) == {"labels"}
