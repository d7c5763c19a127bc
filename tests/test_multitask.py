"""Unit tests for course_lib.multitask: label spaces, sampling, masked loss, metrics."""

import math

import numpy as np
import pytest
import torch
from transformers import BertConfig, BertModel

from course_lib import multitask, settings, training
from course_lib.settings import CourseError
from course_lib.training import Predictions

TASKS = {"sentiment": ["negative", "neutral", "positive"],
         "topic": ["deals", "earnings", "guidance", "markets", "operations"]}


def tiny_encoder(seed: int = 0) -> BertModel:
    settings.seed_everything(seed)
    config = BertConfig(vocab_size=100, hidden_size=16, num_hidden_layers=1,
                        num_attention_heads=2, intermediate_size=32)
    return BertModel(config)


def rows(n: int, seed: int = 0) -> list[dict]:
    """Fake tokenised sentences with a sentiment (``label``) and a ``topic`` column."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    for i in range(n):
        length = int(torch.randint(3, 9, (1,), generator=gen))
        out.append({"input_ids": torch.randint(5, 100, (length,), generator=gen),
                    "attention_mask": torch.ones(length, dtype=torch.long),
                    "label": torch.tensor(i % 3), "topic": torch.tensor(i % 5)})
    return out


def test_task_examples_keep_label_spaces_apart():
    sentiment = multitask.task_examples(rows(6), TASKS, {"sentiment": "label"})
    assert [int(e["labels_sentiment"]) for e in sentiment] == [0, 1, 2, 0, 1, 2]
    assert all(int(e["labels_topic"]) == -100 for e in sentiment)
    both = multitask.task_examples(rows(6), TASKS, {"sentiment": "label", "topic": "topic"})
    assert [int(e["labels_topic"]) for e in both] == [0, 1, 2, 3, 4, 0]
    assert set(both[0]) == {"input_ids", "attention_mask", "labels_sentiment", "labels_topic"}


def test_a_label_outside_its_task_is_an_error():
    bad = rows(6)
    with pytest.raises(CourseError, match="outside its 3 classes"):
        multitask.task_examples(bad, TASKS, {"sentiment": "topic"})  # topic ids up to 4
    with pytest.raises(CourseError, match="no column"):
        multitask.task_examples(bad, TASKS, {"sentiment": "stars"})
    with pytest.raises(CourseError, match="not in tasks"):
        multitask.task_examples(bad, TASKS, {"esg": "label"})


def test_missing_labels_become_ignored_and_unlabelled_rows_are_dropped():
    data = rows(3)
    data[1]["topic"] = torch.tensor(-1)  # ClassLabel's "no label"
    out = multitask.task_examples(data, TASKS, {"topic": "topic"})
    assert len(out) == 2


def test_task_probabilities():
    sizes = {"small": 100, "large": 400}
    assert multitask.task_probabilities(sizes, 1.0) == {"small": 0.2, "large": 0.8}
    p2 = multitask.task_probabilities(sizes, 2.0)
    assert math.isclose(p2["small"], 1 / 3)
    assert multitask.task_probabilities(sizes, math.inf) == {"small": 0.5, "large": 0.5}
    with pytest.raises(CourseError, match="temperature"):
        multitask.task_probabilities(sizes, 0)


@pytest.mark.parametrize("temperature,expected", [(1.0, {"sentiment": 10, "topic": 40}),
                                                  (math.inf, {"sentiment": 25, "topic": 25})])
def test_mix_tasks_covers_every_task_in_its_share(temperature, expected):
    by_task = {"sentiment": multitask.task_examples(rows(10), TASKS, {"sentiment": "label"}),
               "topic": multitask.task_examples(rows(40, seed=1), TASKS, {"topic": "topic"})}
    mixture = multitask.mix_tasks(by_task, temperature=temperature, seed=3)
    assert len(mixture) == 50
    assert multitask.mixture_counts(mixture, TASKS) == expected
    # each example keeps exactly one task's label, from its own label space
    for example in mixture:
        s, t = int(example["labels_sentiment"]), int(example["labels_topic"])
        assert (s == -100) != (t == -100)
        assert s in (-100, 0, 1, 2) and t in (-100, 0, 1, 2, 3, 4)
    # the small task is repeated as evenly as possible: every example 2 or 3 times
    if temperature == math.inf:
        seen = [id(e) for e in mixture if int(e["labels_sentiment"]) != -100]
        assert sorted(np.unique(seen, return_counts=True)[1].tolist()) == [2] * 5 + [3] * 5
    again = multitask.mix_tasks(by_task, temperature=temperature, seed=3)
    assert [id(e) for e in again] == [id(e) for e in mixture]  # seeded


def test_masked_loss_uses_each_head_only_on_its_labels():
    model = multitask.MultiTaskModel(tiny_encoder(), TASKS, loss_weights={"topic": 2.0})
    model.eval()
    ids = torch.randint(5, 100, (4, 6))
    mask = torch.ones_like(ids)
    sentiment = torch.tensor([0, 2, -100, -100])
    topic = torch.tensor([-100, -100, 4, 1])
    out = model(ids, mask, labels_sentiment=sentiment, labels_topic=topic)
    assert out["logits_sentiment"].shape == (4, 3) and out["logits_topic"].shape == (4, 5)
    ce = torch.nn.functional.cross_entropy
    expected = (ce(out["logits_sentiment"][:2], sentiment[:2], reduction="sum")
                + 2.0 * ce(out["logits_topic"][2:], topic[2:], reduction="sum")) / 4
    torch.testing.assert_close(out["loss"], expected)
    # a batch with no topic labels gives the topic head no gradient
    model.zero_grad()
    model(ids, mask, labels_sentiment=torch.tensor([0, 1, 2, 0]),
          labels_topic=torch.full((4,), -100))["loss"].backward()
    assert model.heads["topic"].linear.weight.grad.abs().sum() == 0
    assert model.heads["sentiment"].linear.weight.grad.abs().sum() > 0


def test_heads_come_from_the_seed_and_leave_the_global_stream_alone():
    """Regression (issue 14, item 8): the constructor reseeded the global RNG to 42."""
    first, second = tiny_encoder(), tiny_encoder()
    torch.manual_seed(123)
    before = torch.get_rng_state()
    a = multitask.MultiTaskModel(first, TASKS, pooling="attention", seed=5)
    assert torch.equal(torch.get_rng_state(), before)
    b = multitask.MultiTaskModel(second, TASKS, pooling="attention", seed=5)
    for task in TASKS:
        torch.testing.assert_close(a.heads[task].linear.weight, b.heads[task].linear.weight)
    torch.testing.assert_close(a.pooling.score.weight, b.pooling.score.weight)


def test_model_rejects_unknown_inputs_and_weights():
    model = multitask.MultiTaskModel(tiny_encoder(), TASKS)
    ids = torch.randint(5, 100, (2, 4))
    with pytest.raises(CourseError, match="unexpected input"):
        model(ids, torch.ones_like(ids), labels=torch.tensor([0, 1]))
    with pytest.raises(CourseError, match="unknown task"):
        multitask.MultiTaskModel(tiny_encoder(), TASKS, loss_weights={"esg": 1.0})


def test_multitask_metrics_score_each_task_on_its_own_examples():
    logits_s = np.array([[9, 0, 0], [0, 9, 0], [0, 0, 9], [9, 0, 0]], dtype=float)
    logits_t = np.zeros((4, 5))
    logits_t[:, 3] = 9
    preds = Predictions(outputs={"logits_sentiment": logits_s, "logits_topic": logits_t},
                        labels={"labels_sentiment": np.array([0, 1, -100, -100]),
                                "labels_topic": np.array([-100, -100, 3, 1])})
    scores = multitask.multitask_metrics(TASKS)(preds)
    assert scores["sentiment_accuracy"] == 1.0
    assert scores["topic_accuracy"] == 0.5
    assert math.isclose(scores["mean_macro_f1"],
                        (scores["sentiment_macro_f1"] + scores["topic_macro_f1"]) / 2)


def test_trainer_trains_a_multitask_model_on_a_mixture():
    by_task = {"sentiment": multitask.task_examples(rows(12), TASKS, {"sentiment": "label"}),
               "topic": multitask.task_examples(rows(24, seed=1), TASKS, {"topic": "topic"})}
    mixture = multitask.mix_tasks(by_task, temperature=2.0)
    evaluation = multitask.task_examples(rows(10, seed=2), TASKS,
                                         {"sentiment": "label", "topic": "topic"})
    model = multitask.MultiTaskModel(tiny_encoder(), TASKS, pooling="attention")
    config = training.TrainingConfig(epochs=2, batch_size=8, progress=False, verbose=False,
                                     metric_for_best="mean_macro_f1")
    trainer = training.Trainer(model, config, train_dataset=mixture, eval_dataset=evaluation,
                               compute_metrics=multitask.multitask_metrics(TASKS),
                               label_keys=multitask.label_keys(TASKS))
    history = trainer.train()
    final = history.final
    for key in ("eval_sentiment_accuracy", "eval_topic_macro_f1", "eval_mean_macro_f1"):
        assert 0.0 <= final[key] <= 1.0
