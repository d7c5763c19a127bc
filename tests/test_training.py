import math

import pytest
import torch

from course_lib.batching import BatchPlan, PadCollator, padding_waste
from course_lib.metrics import classification_metrics
from course_lib.settings import CourseError, seed_everything
from course_lib.training import Callback, Trainer, TrainingConfig, make_scheduler
from tests.conftest import TinyClassifier


def make_trainer(train, evals, tmp_path=None, **overrides):
    seed_everything(0)
    model = TinyClassifier()
    options = dict(learning_rate=0.05, epochs=4, batch_size=8, warmup_ratio=0.0, verbose=False,
                   progress=False, output_dir=str(tmp_path) if tmp_path else None)
    config = TrainingConfig(**{**options, **overrides})
    return Trainer(model, config, train_dataset=train, eval_dataset=evals,
                   compute_metrics=classification_metrics(["no", "yes"]))


def weights(trainer):
    return {k: v.detach().clone() for k, v in trainer.unwrapped_model.state_dict().items()}


def test_learns_a_separable_toy_task(toy_data):
    train, evals = toy_data
    trainer = make_trainer(train, evals, epochs=8)
    history = trainer.train()
    assert history.evals[0]["eval_loss"] > history.evals[-1]["eval_loss"]
    assert history.final["eval_accuracy"] >= 0.9


class Interrupt(Callback):
    def __init__(self, at_step):
        self.at_step = at_step

    def on_step_end(self, trainer, step):
        if step == self.at_step:
            raise KeyboardInterrupt


@pytest.mark.parametrize("accumulation", [1, 3])
def test_resume_gives_the_same_weights(toy_data, tmp_path, accumulation):
    train, evals = toy_data
    reference = make_trainer(train, evals, gradient_accumulation_steps=accumulation)
    reference.train()
    expected = weights(reference)

    interrupted = make_trainer(train, evals, tmp_path, gradient_accumulation_steps=accumulation)
    interrupted.callbacks.append(Interrupt(at_step=7))  # mid-epoch
    with pytest.raises(KeyboardInterrupt):
        interrupted.train()
    assert list((tmp_path / "checkpoints").glob("step-0000007"))

    torch.manual_seed(1234)  # a fresh process would have a different RNG state
    resumed = make_trainer(train, evals, tmp_path, gradient_accumulation_steps=accumulation)
    resumed.train(resume_from="latest")
    for name, value in weights(resumed).items():
        torch.testing.assert_close(value, expected[name], rtol=0, atol=1e-6, msg=name)
    assert resumed.global_step == reference.global_step


def test_checkpoints_and_best_model_are_written_atomically(toy_data, tmp_path):
    train, evals = toy_data
    trainer = make_trainer(train, evals, tmp_path, epochs=2)
    trainer.train()
    assert (tmp_path / "best" / "model.safetensors").is_file()
    assert not list(tmp_path.rglob("*.tmp")) and not list(tmp_path.rglob("*.old"))
    assert len(list((tmp_path / "checkpoints").glob("step-*"))) == 1


def test_early_stopping_stops(toy_data):
    train, evals = toy_data
    # a learning rate of zero never improves the validation loss after the first eval
    trainer = make_trainer(train, evals, epochs=10, learning_rate=0.0,
                           early_stopping_patience=2)
    history = trainer.train()
    assert history.stopped_early
    assert len(history.evals) == 3


def test_best_weights_are_restored_at_the_end(toy_data):
    train, evals = toy_data
    trainer = make_trainer(train, evals, epochs=6, metric_for_best="accuracy")
    history = trainer.train()
    restored = trainer.evaluate()["accuracy"]
    assert restored == pytest.approx(max(e["eval_accuracy"] for e in history.evals))


def test_gradient_accumulation_matches_the_large_batch(toy_data):
    train, evals = toy_data
    config = dict(epochs=2, group_by_length=False, max_grad_norm=None)
    big = make_trainer(train, evals, **{**config, "batch_size": 32})
    big.config.batch_size = 32
    small = make_trainer(train, evals, **{**config, "batch_size": 8,
                                          "gradient_accumulation_steps": 4})
    for trainer in (big, small):  # no dropout: the two runs must see the same maths
        trainer._model.dropout.p = 0.0
        trainer.train()
    assert big.global_step == small.global_step == 6
    for name, value in weights(big).items():
        torch.testing.assert_close(value, weights(small)[name], rtol=1e-4, atol=1e-5)


def test_nan_loss_stops_with_a_clear_message(toy_data):
    train, evals = toy_data
    trainer = make_trainer(train, evals)
    before = weights(trainer)

    def nan_loss(model, batch):
        outputs = model(**batch)
        return outputs["loss"] * float("nan"), outputs

    trainer.compute_loss = nan_loss
    with pytest.raises(CourseError, match="loss became nan at step 1"):
        trainer.train()
    for name, value in weights(trainer).items():
        assert torch.equal(value, before[name]), "weights changed after a NaN loss"


def test_schedule_warms_up_then_decays():
    param = torch.nn.Parameter(torch.zeros(1))
    for name in ("linear", "cosine", "slanted_triangular"):
        opt = torch.optim.SGD([param], lr=1.0)
        sched = make_scheduler(opt, name, warmup_steps=10, total_steps=100)
        lrs = []
        for _ in range(100):
            lrs.append(sched.get_last_lr()[0])
            opt.step()
            sched.step()
        assert max(lrs) == pytest.approx(1.0, abs=0.1)
        assert lrs.index(max(lrs)) in range(8, 12), name
        assert lrs[-1] < 0.1, name


def test_length_grouping_cuts_padding_and_keeps_every_example():
    lengths = [int(x) for x in torch.randint(5, 120, (1000,), generator=torch.Generator()
                                              .manual_seed(0))]
    grouped = BatchPlan(lengths, 32, group_by_length=True, seed=0)
    random_batches = BatchPlan(lengths, 32, group_by_length=False, seed=0)
    for plan in (grouped, random_batches):
        seen = sorted(i for b in plan.batches(0) for i in b)
        assert seen == list(range(1000))
    assert padding_waste(lengths, grouped.batches(0)) < 0.1
    assert padding_waste(lengths, random_batches.batches(0)) > 0.3
    assert grouped.batches(0) != grouped.batches(1)  # reshuffled every epoch
    assert grouped.batches(3) == BatchPlan(lengths, 32, seed=0).batches(3)  # reproducible


def test_two_processes_split_each_global_batch():
    lengths = list(range(1, 41))
    single = BatchPlan(lengths, 8, group_by_length=False, seed=0)
    shards = [BatchPlan(lengths, 4, group_by_length=False, seed=0, num_processes=2,
                        process_index=p) for p in range(2)]
    for step, batch in enumerate(single.batches(0)):
        assert sorted(batch) == sorted(shards[0].batches(0)[step] + shards[1].batches(0)[step])


def test_collator_pads_inputs_masks_and_token_labels():
    collate = PadCollator(pad_token_id=0)
    batch = collate([{"input_ids": torch.tensor([5, 6, 7]), "attention_mask": torch.ones(3),
                      "labels": torch.tensor(1)},
                     {"input_ids": torch.tensor([5]), "attention_mask": torch.ones(1),
                      "labels": torch.tensor(0)}])
    assert batch["input_ids"].tolist() == [[5, 6, 7], [5, 0, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert batch["labels"].tolist() == [1, 0]
    tokens = collate([{"input_ids": torch.tensor([1, 2]), "labels": torch.tensor([3, 4])},
                      {"input_ids": torch.tensor([1]), "labels": torch.tensor([3])}])
    assert tokens["labels"].tolist() == [[3, 4], [3, -100]]


def test_predictions_come_back_in_dataset_order(toy_data):
    train, evals = toy_data
    trainer = make_trainer(train, evals, epochs=1)
    trainer.train()
    preds = trainer.predict(evals)
    assert preds.label_ids.tolist() == [row["labels"] for row in evals]
    assert preds.logits.shape == (len(evals), 2)
    assert math.isfinite(preds.loss)
