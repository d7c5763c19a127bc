"""course_lib.strategies on a tiny BERT (2 layers, 32 wide): fast, no packaged weights."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from transformers import BertConfig, BertForQuestionAnswering, BertForSequenceClassification

from course_lib import strategies as S
from course_lib.settings import CourseError, seed_everything
from course_lib.training import Trainer, TrainingConfig

LABELS = {0: "negative", 1: "neutral", 2: "positive"}
HIDDEN, LAYERS = 32, 2


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny matrices: threads only add overhead (a lot of it on a busy machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tiny_config(**kwargs) -> BertConfig:
    return BertConfig(vocab_size=100, hidden_size=HIDDEN, num_hidden_layers=LAYERS,
                      num_attention_heads=2, intermediate_size=64, max_position_embeddings=64,
                      **kwargs)


def tiny_model(labels=LABELS, seed: int = 0) -> BertForSequenceClassification:
    config = tiny_config(num_labels=len(labels), id2label=labels,
                         label2id={v: k for k, v in labels.items()})
    seed_everything(seed)
    return BertForSequenceClassification(config).eval()


def tiny_qa_model(seed: int = 0) -> BertForQuestionAnswering:
    seed_everything(seed)
    return BertForQuestionAnswering(tiny_config()).eval()


def batch(n: int = 4, length: int = 9) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    ids = torch.randint(5, 100, (n, length), generator=generator)
    mask = torch.ones_like(ids)
    mask[0, 6:] = 0
    return {"input_ids": ids, "attention_mask": mask}


def rows(n: int = 24) -> list[dict]:
    generator = torch.Generator().manual_seed(2)
    return [{"input_ids": torch.randint(5, 100, (int(length),), generator=generator).tolist(),
             "attention_mask": [1] * int(length), "labels": i % 3}
            for i, length in enumerate(torch.randint(4, 12, (n,), generator=generator))]


def logits(model, inputs=None) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(**(inputs or batch())).logits


def perturb(params, seed: int = 3) -> None:
    """Move trainable weights away from their initial values (as training would)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in params:
            p.add_(0.05 * torch.randn(p.shape, generator=generator))


def trainable_names(model) -> set[str]:
    return {n for n, p in model.named_parameters() if p.requires_grad}


def count(params) -> int:
    return sum(p.numel() for p in params)


# -------------------------------------------------------------- anatomy/freeze
def test_units_cover_every_parameter_once():
    model = tiny_model()
    units = S.units_top_down(model)
    assert [u for u, _ in units] == ["head", "layer 1", "layer 0", "embeddings"]
    ids = [id(p) for _, params in units for p in params]
    assert len(ids) == len(set(ids)) == len(list(model.parameters()))


@pytest.mark.parametrize("k", [0, 1, 2])
def test_top_layers_trains_exactly_head_and_top_k(k):
    model = tiny_model()
    plan = S.apply_strategy(model, "freeze", top_layers=k)
    layers = S.encoder_layers(model)
    expected = count(S.head_parameters(model)) + count(
        p for layer in layers[LAYERS - k:] for p in layer.parameters())
    assert plan.trainable == expected
    assert plan.total == count(model.parameters())
    assert not any(p.requires_grad for p in S.base_model(model).embeddings.parameters())


def test_freeze_embeddings_and_bottom_layers():
    model = tiny_model()
    S.freeze(model, bottom_layers=1)
    names = trainable_names(model)
    assert not any(n.startswith(("bert.embeddings", "bert.encoder.layer.0.")) for n in names)
    assert any(n.startswith("bert.encoder.layer.1.") for n in names)
    S.freeze(model, embeddings=True)
    assert any(n.startswith("bert.encoder.layer.0.") for n in trainable_names(model))
    with pytest.raises(CourseError, match="top_layers"):
        S.freeze(model, top_layers=LAYERS + 1)


def test_frozen_weights_do_not_move_in_training():
    model = tiny_model()
    S.apply_strategy(model, "freeze", top_layers=1)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    Trainer(model, TrainingConfig(epochs=1, batch_size=8, learning_rate=1e-2, eval_every=None,
                                  progress=False, verbose=False),
            train_dataset=rows()).train()
    for name, p in model.named_parameters():
        moved = not torch.equal(before[name], p.detach())
        assert moved == p.requires_grad, name


# --------------------------------------------------------------- layer-wise
def test_layerwise_groups_decay_from_the_top():
    model = tiny_model()
    groups = S.layerwise_param_groups(model, decay=0.5)
    scale_of = {g["name"]: g["lr_scale"] for g in groups}
    assert scale_of == {"head": 1.0, "layer 1": 1.0, "layer 0": 0.5, "embeddings": 0.25}
    assert not any("lr" in g for g in groups)  # the rate itself comes from the config
    ids = [id(p) for g in groups for p in g["params"]]
    assert len(ids) == len(set(ids)) == len(list(model.parameters()))
    no_decay = [g for g in groups if g["weight_decay"] == 0.0]
    assert all(p.ndim == 1 for g in no_decay for p in g["params"])


def test_layerwise_follows_the_configured_learning_rate():
    """Regression (issue 14, item 5): the strategy's own 3e-4 peak won over learning_rate,
    so a learner who set 2e-5 for bert-base trained at 15 times that."""
    plan = S.apply_strategy(tiny_model(), "layerwise", decay=0.5, gradual=False)
    config = TrainingConfig(learning_rate=2e-5, max_steps=1, batch_size=8, schedule="constant",
                            warmup_ratio=0.0, eval_every=None, progress=False, verbose=False)
    trainer = Trainer(plan.model, config, train_dataset=rows(), param_groups=plan.param_groups)
    trainer.train()
    lr_of = {g["name"]: g["lr"] for g in trainer.optimizer.param_groups}
    assert lr_of == pytest.approx({"head": 2e-5, "layer 1": 2e-5, "layer 0": 1e-5,
                                   "embeddings": 5e-6})
    with pytest.raises(CourseError, match="takes no lr"):
        S.apply_strategy(tiny_model(), "layerwise", lr=3e-4)


class FakeTrainer:
    total_steps = 12
    global_step = 0


def test_gradual_unfreezing_by_steps():
    model = tiny_model()
    callback = S.GradualUnfreezing(model, every=None, unfreeze_by=0.5)
    trainer = FakeTrainer()
    callback.on_train_begin(trainer)
    head = {id(p) for p in S.head_parameters(model)}
    assert {id(p) for p in model.parameters() if p.requires_grad} == head
    for step in range(1, 13):
        callback.on_step_end(trainer, step)
    # 3 more units (layer 1, layer 0, embeddings) over half of 12 steps: one every 2 steps
    assert callback.events == [(0, "head"), (2, "layer 1"), (4, "layer 0"), (6, "embeddings")]
    assert all(p.requires_grad for p in model.parameters())


def test_gradual_unfreezing_per_epoch_keeps_embeddings_frozen():
    model = tiny_model()
    callback = S.GradualUnfreezing(model, every="epoch", include_embeddings=False)
    callback.on_train_begin(FakeTrainer())
    for epoch in range(5):
        callback.on_epoch_begin(FakeTrainer(), epoch)
    assert [u for _, u in callback.events] == ["head", "layer 1", "layer 0"]
    assert not any(p.requires_grad for p in S.base_model(model).embeddings.parameters())


def test_layerwise_plan_trains_with_the_trainer():
    model = tiny_model()
    plan = S.apply_strategy(model, "layerwise", decay=0.8)
    embeddings = S.base_model(model).embeddings.word_embeddings.weight.detach().clone()
    trainer = Trainer(plan.model, TrainingConfig(epochs=2, batch_size=4, learning_rate=1e-2,
                                                 eval_every=None, progress=False,
                                                 verbose=False),
                      train_dataset=rows(), param_groups=plan.param_groups,
                      callbacks=plan.callbacks)
    trainer.train()
    events = plan.callbacks[0].events
    assert [u for _, u in events] == ["head", "layer 1", "layer 0", "embeddings"]
    assert events[-1][0] < trainer.total_steps  # everything thawed before the end
    assert not torch.equal(embeddings, S.base_model(model).embeddings.word_embeddings.weight)
    assert plan.trainable == plan.total


# ------------------------------------------------------------------ adapters
def test_adapter_is_identity_at_start_and_count_matches_formula():
    model = tiny_model()
    before = logits(model)
    plan = S.apply_strategy(model, "adapters", reduction=4, train_layernorm=False,
                            train_pooler=False)
    assert torch.equal(logits(model), before)
    adapter_params = count(p for a in S.adapters_of(model) for p in a.parameters())
    assert adapter_params == S.adapter_parameter_count(HIDDEN, 4, LAYERS)
    assert plan.trainable == adapter_params + count(model.classifier.parameters())
    assert plan.total == count(tiny_model().parameters()) + adapter_params


def test_adapters_train_layernorms_and_pooler_when_asked():
    model = tiny_model()
    plan = S.apply_strategy(model, "adapters", reduction=4)
    names = trainable_names(model)
    assert any("LayerNorm" in n and "encoder" in n for n in names)
    assert any(n.startswith("bert.pooler") for n in names)
    assert not any("attention.self" in n or "embeddings" in n for n in names)
    assert plan.trainable_share < 0.5


def test_adapter_seed_decides_the_new_weights():
    a = S.apply_strategy(tiny_model(), "adapters", reduction=4, seed=7).model
    b = S.apply_strategy(tiny_model(), "adapters", reduction=4, seed=7).model
    c = S.apply_strategy(tiny_model(), "adapters", reduction=4, seed=8).model
    down = [m.down.weight for m in S.adapters_of(a)]
    assert all(torch.equal(x, y.down.weight) for x, y in zip(down, S.adapters_of(b)))
    assert not torch.equal(down[0], S.adapters_of(c)[0].down.weight)


def test_adapter_model_saves_for_pipeline(tmp_path):
    from transformers import AutoModelForSequenceClassification

    model = tiny_model()
    plan = S.apply_strategy(model, "adapters", reduction=4)
    perturb(p for p in model.parameters() if p.requires_grad)
    expected = logits(model)
    plan.save(tmp_path / "model")
    loaded = AutoModelForSequenceClassification.from_pretrained(tmp_path / "model")
    assert type(loaded).__name__ == "AdapterBertForSequenceClassification"
    assert torch.allclose(logits(loaded), expected, atol=1e-6)
    assert loaded.config.id2label == LABELS


def test_adapter_only_files_are_small_and_swap_tasks(tmp_path):
    sentiment = tiny_model()
    S.apply_strategy(sentiment, "adapters", reduction=4, seed=1)
    perturb((p for p in sentiment.parameters() if p.requires_grad), seed=4)
    S.save_adapter(sentiment, tmp_path / "sentiment")
    topics = {0: "deals", 1: "earnings", 2: "guidance", 3: "markets", 4: "operations"}
    topic = tiny_model(labels=topics)
    topic.bert.load_state_dict(sentiment.bert.state_dict(), strict=False)  # same backbone
    S.apply_strategy(topic, "adapters", reduction=4, seed=2)
    perturb((p for p in topic.parameters() if p.requires_grad), seed=5)
    S.save_adapter(topic, tmp_path / "topic")

    files = tmp_path / "sentiment" / S.ADAPTER_WEIGHTS
    assert files.stat().st_size < 0.5 * count(sentiment.parameters()) * 4

    shared = tiny_model()  # one backbone object, two tasks in turn
    S.load_adapter(shared, tmp_path / "topic")
    assert shared.config.id2label == topics
    assert torch.allclose(logits(shared), logits(topic), atol=1e-6)
    S.load_adapter(shared, tmp_path / "sentiment")
    assert shared.config.id2label == LABELS
    assert torch.allclose(logits(shared), logits(sentiment), atol=1e-6)


# ---------------------------------------------------------------------- LoRA
def test_lora_counts_and_merged_save(tmp_path):
    from transformers import AutoModelForSequenceClassification

    model = tiny_model()
    before = logits(model)
    plan = S.apply_strategy(model, "lora", r=4, alpha=8, seed=3)
    assert torch.allclose(logits(plan.model), before, atol=1e-6)  # B starts at zero
    lora = count(p for n, p in plan.model.named_parameters() if "lora_" in n)
    # 6 linear maps per layer: q, k, v, attention output, intermediate, output
    per_layer = 4 * 4 * (HIDDEN + HIDDEN) + 4 * (HIDDEN + 64) + 4 * (64 + HIDDEN)
    assert lora == LAYERS * per_layer
    head = count(S.head_parameters(tiny_model()))
    assert plan.trainable == lora + head
    assert plan.total == count(tiny_model().parameters()) + lora

    perturb(p for n, p in plan.model.named_parameters() if p.requires_grad)
    expected = logits(plan.model)
    plan.save(tmp_path / "model")
    loaded = AutoModelForSequenceClassification.from_pretrained(tmp_path / "model")
    assert type(loaded).__name__ == "BertForSequenceClassification"  # merged: plain BERT
    assert torch.allclose(logits(loaded), expected, atol=1e-5)
    assert torch.allclose(logits(plan.model), expected)  # the training model is untouched

    plan.save_adapter(tmp_path / "lora")
    again = S.load_adapter(tiny_model(), tmp_path / "lora")
    assert torch.allclose(logits(again), expected, atol=1e-5)


def qa_logits(model) -> torch.Tensor:
    with torch.no_grad():
        out = model.eval()(**batch())
    return torch.stack([out.start_logits, out.end_logits])


def test_lora_for_question_answering_trains_and_saves_its_head(tmp_path):
    """Regression (issue 14, item 4): ``modules_to_save=["classifier"]`` missed
    ``qa_outputs``: the QA head stayed frozen at its random start and save_adapter wrote
    no head weights, so a reloaded adapter answered with another random head."""
    from safetensors import safe_open

    plan = S.apply_strategy(tiny_qa_model(), "lora", r=4, seed=3)
    trained = [n for n, p in plan.model.named_parameters() if p.requires_grad]
    assert any("qa_outputs" in n for n in trained)
    assert plan.trainable == sum(p.numel() for p in plan.model.parameters() if p.requires_grad)
    perturb(p for p in plan.model.parameters() if p.requires_grad)
    expected = qa_logits(plan.model)
    plan.save_adapter(tmp_path / "lora")
    with safe_open(str(tmp_path / "lora" / "adapter_model.safetensors"), "pt") as saved:
        assert any("qa_outputs" in key for key in saved.keys())

    fresh = tiny_qa_model()  # the same backbone, a head drawn anew
    torch.nn.init.normal_(fresh.qa_outputs.weight, generator=torch.Generator().manual_seed(9))
    again = S.load_adapter(fresh, tmp_path / "lora")
    assert torch.allclose(qa_logits(again), expected, atol=1e-5)


def test_new_weights_leave_the_global_random_streams_alone():
    """Regression (issue 14, item 8): a seed for new weights reseeded every global stream,
    so building a model mid-notebook reset dropout and shuffling."""
    first, second, third = tiny_model(), tiny_model(), tiny_model()
    torch.manual_seed(123)
    random.seed(123)
    np.random.seed(123)
    states = torch.get_rng_state(), random.getstate(), np.random.get_state()[1].copy()
    adapters = S.apply_strategy(first, "adapters", reduction=4, seed=7).model
    lora = S.apply_strategy(second, "lora", r=4, seed=7).model
    assert torch.equal(torch.get_rng_state(), states[0])
    assert random.getstate() == states[1]
    assert np.array_equal(np.random.get_state()[1], states[2])
    again = S.apply_strategy(third, "adapters", reduction=4, seed=7).model
    assert all(torch.equal(a.down.weight, b.down.weight)
               for a, b in zip(S.adapters_of(adapters), S.adapters_of(again)))
    assert any("lora_A" in n for n, _ in lora.named_parameters())


def test_lora_seed_decides_the_new_weights():
    def a_matrix(seed):
        plan = S.apply_strategy(tiny_model(), "lora", seed=seed)
        return next(p for n, p in plan.model.named_parameters() if "lora_A" in n).detach()

    assert torch.equal(a_matrix(5), a_matrix(5))
    assert not torch.equal(a_matrix(5), a_matrix(6))


# ------------------------------------------------------------ plan and errors
def test_unknown_strategy_or_option_is_one_clear_error():
    with pytest.raises(CourseError, match="unknown strategy 'prefix'"):
        S.apply_strategy(tiny_model(), "prefix")
    with pytest.raises(CourseError, match="has no option rank"):
        S.apply_strategy(tiny_model(), "lora", rank=4)


def test_full_plan_and_save_is_atomic(tmp_path):
    from transformers import AutoModelForSequenceClassification

    model = tiny_model()
    plan = S.apply_strategy(model, "full")
    assert plan.trainable == plan.total and plan.param_groups is None
    plan.save(tmp_path / "model")
    good = logits(AutoModelForSequenceClassification.from_pretrained(tmp_path / "model"))

    def crash(tmp):
        raise RuntimeError("disk full")

    perturb(model.parameters())
    with pytest.raises(RuntimeError):
        plan.save(tmp_path / "model", extra=crash)
    kept = AutoModelForSequenceClassification.from_pretrained(tmp_path / "model")
    assert torch.equal(logits(kept), good)  # the good folder is still there, whole
