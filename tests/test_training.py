import math
from pathlib import Path

import pytest
import torch

from course_lib.metrics import classification_metrics
from course_lib.settings import CourseError, seed_everything
from course_lib.training import (
    BatchPlan,
    Callback,
    PadCollator,
    Trainer,
    TrainingConfig,
    make_scheduler,
    padding_waste,
)
from tests.conftest import TinyClassifier, toy_examples


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


# ----------------------------------------------------------------- issue 14 regressions
def tiny_bert(labels: int = 2, **overrides):
    """A random 2-layer BERT classifier (vocab 50, so the toy examples fit), built in memory."""
    from transformers import BertConfig, BertForSequenceClassification

    config = BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=32, num_labels=labels,
                        **overrides)
    torch.manual_seed(0)
    return BertForSequenceClassification(config)


def test_the_default_config_trains_without_an_evaluation_set(toy_data):
    """Item 2: eval_every="epoch" used to end epoch 1 with "no eval_dataset to evaluate on"."""
    from course_lib import training

    train, _ = toy_data
    trainer, history = training.train(TinyClassifier(), train, epochs=1, progress=False)
    assert trainer.global_step == 3 and history.evals == [] and history.steps


def test_caches_follow_the_dataset_object_not_its_id(toy_data):
    """Item 3: CPython reuses a freed object's id; an id-keyed cache served the old tensors."""

    class Rows(list):  # a list of dicts that, like datasets.Dataset, takes weak references
        pass

    train, _ = toy_data
    trainer = make_trainer(train, None, epochs=1)
    model = trainer.unwrapped_model.eval()
    seen, reused = set(), 0
    for seed in range(60):
        dataset = Rows(toy_examples(6 + seed % 3, seed=100 + seed))
        reused += id(dataset) in seen
        seen.add(id(dataset))
        preds = trainer.predict(dataset)
        assert preds.label_ids.tolist() == [r["labels"] for r in dataset], seed
        expected = model(**PadCollator()([{k: torch.tensor(v) for k, v in r.items()}
                                          for r in dataset]))["logits"]
        torch.testing.assert_close(torch.as_tensor(preds.logits), expected.detach())
        del dataset
        if reused >= 3:
            break
    assert reused >= 3, "the test needs ids to be reused"
    assert len(trainer._tensors) <= 2  # the train set, and at most the last evaluation set


def test_dataset_cache_never_serves_a_freed_dataset():
    from datasets import Dataset

    from course_lib.training import DatasetCache

    cache = DatasetCache(max_strong=2)
    for i in range(20):
        dataset = Dataset.from_dict({"x": [i]})
        assert cache.get(dataset, lambda d=dataset: d["x"][0]) == i
        assert cache.get(dataset, lambda: -1) == i  # built once
        rows = [{"x": i}]
        assert cache.get(rows, lambda r=rows: r[0]["x"]) == i
        del dataset, rows
    assert len(cache) <= 3


def test_evaluation_reports_the_trained_loss_and_selection_follows_it(toy_data):
    """Item 6: with a class-weighted compute_loss, evaluation reported the unweighted loss."""
    train, evals = toy_data
    weight = torch.tensor([1.0, 10.0])

    def weighted(model, batch):
        outputs = model(**batch)
        return torch.nn.functional.cross_entropy(outputs["logits"], batch["labels"],
                                                 weight=weight), outputs

    trainer = make_trainer(train, evals, epochs=2)
    trainer.compute_loss = weighted
    history = trainer.train()
    batch = PadCollator()([{k: torch.tensor(v) for k, v in r.items()} for r in evals])
    with torch.no_grad():
        expected = weighted(trainer.unwrapped_model.eval(), batch)[0]
    assert trainer.evaluate()["loss"] == pytest.approx(float(expected), rel=1e-5)
    assert history.best_metric == min(e["eval_loss"] for e in history.evals)


def test_greater_is_better_is_inferred_or_given():
    assert not TrainingConfig().maximise()
    assert TrainingConfig(metric_for_best="accuracy").maximise()
    assert not TrainingConfig(metric_for_best="error_rate").maximise()
    assert not TrainingConfig(metric_for_best="accuracy", greater_is_better=False).maximise()


def test_an_explicit_direction_wins(toy_data):
    train, evals = toy_data
    trainer = make_trainer(train, evals, epochs=3, metric_for_best="loss",
                           greater_is_better=True)
    history = trainer.train()
    assert history.best_metric == max(e["eval_loss"] for e in history.evals)


class InterruptOnce(Callback):
    def __init__(self, at_step):
        self.at_step = at_step

    def on_step_end(self, trainer, step):
        if step == self.at_step:
            raise KeyboardInterrupt


def unfreezing_run(train, tmp_path, interrupt_at=None, resume=False, **overrides):
    from course_lib.strategies import GradualUnfreezing

    model = tiny_bert()
    options = dict(learning_rate=1e-2, epochs=3, batch_size=8, verbose=False, progress=False,
                   eval_every=None, output_dir=str(tmp_path), save_every=2)
    callbacks = [GradualUnfreezing(model, every=5)]
    if interrupt_at:
        callbacks.append(InterruptOnce(interrupt_at))
    trainer = Trainer(model, TrainingConfig(**{**options, **overrides}), train_dataset=train,
                      callbacks=callbacks)
    trainer.train(resume_from="latest" if resume else None)
    return trainer


def test_resume_with_gradual_unfreezing_is_exact(toy_data, tmp_path):
    """Item 7: on_train_begin re-froze every layer after a resume (the CLI's default strategy)."""
    train, _ = toy_data
    reference = unfreezing_run(train, tmp_path / "reference")
    with pytest.raises(KeyboardInterrupt):
        unfreezing_run(train, tmp_path / "run", interrupt_at=13)  # 2 units thawed, mid-epoch
    torch.manual_seed(99)
    resumed = unfreezing_run(train, tmp_path / "run", resume=True)
    assert resumed.callbacks[0].events == reference.callbacks[0].events
    for name, value in weights(resumed).items():
        torch.testing.assert_close(value, weights(reference)[name], rtol=0, atol=1e-6, msg=name)


def test_resume_refuses_another_recipe_in_one_line(toy_data, tmp_path):
    train, evals = toy_data
    first = make_trainer(train, evals, tmp_path, epochs=2)
    first.callbacks.append(Interrupt(at_step=4))
    with pytest.raises(KeyboardInterrupt):
        first.train()
    other = make_trainer(train, evals, tmp_path, epochs=2, learning_rate=0.01, verbose=True)
    with pytest.raises(CourseError, match=r"learning_rate 0\.05 -> 0\.01\)") as err:
        other.train(resume_from="latest")
    assert "\n" not in str(err.value) and "verbose" not in str(err.value)
    same = make_trainer(train, evals, tmp_path, epochs=2, verbose=True, log_every=3)
    same.train(resume_from="latest")  # display settings may differ
    assert same.global_step == 24


def test_train_seeds_dropout_from_the_config(toy_data):
    """Item 8: the Trainer never seeded, so dropout masks followed whatever ran before."""
    train, evals = toy_data
    runs = []
    for noise in (1, 2):
        trainer = make_trainer(train, evals, epochs=1, seed=7)
        torch.manual_seed(noise)  # e.g. another model built in between
        trainer.train()
        runs.append(weights(trainer))
    for name, value in runs[0].items():
        assert torch.equal(value, runs[1][name]), name


def test_only_the_models_inputs_reach_a_forward_that_takes_kwargs(toy_data):
    """Item 9: with **kwargs in forward, every numeric column (topic, doc_id) went in."""
    from course_lib.training import model_inputs

    train, evals = toy_data
    extra = [{**row, "topic": i % 3, "doc_id": i} for i, row in enumerate(train)]
    model = tiny_bert()
    seen = set()
    model.register_forward_pre_hook(lambda m, args, kwargs: seen.update(kwargs), with_kwargs=True)
    trainer = Trainer(model, TrainingConfig(epochs=1, batch_size=16, progress=False,
                                            verbose=False), train_dataset=extra,
                      eval_dataset=extra[:20])
    trainer.train()
    assert seen and seen <= {"input_ids", "attention_mask", "labels"}, seen

    class Anything(torch.nn.Module):
        def forward(self, **kwargs): ...

    assert model_inputs(Anything()) is None  # a plain module asking for everything gets it
    assert model_inputs(TinyClassifier()) == {"input_ids", "attention_mask", "labels"}


def test_auto_precision_is_bf16_only_on_native_bf16_gpus(monkeypatch):
    """Item 10: is_bf16_supported() is True on T4/V100, which only emulate bf16."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    for capability, expected in (((7, 5), "fp16"), ((7, 0), "fp16"), ((8, 0), "bf16"),
                                 ((9, 0), "bf16")):
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a, c=capability: c)
        assert TrainingConfig().resolved_mixed_precision() == expected, capability
    assert TrainingConfig(mixed_precision="no").resolved_mixed_precision() == "no"


def test_the_schedule_waits_when_the_scaler_skips_a_step(toy_data, monkeypatch):
    """Item 10: with fp16 a skipped optimizer step (inf gradients) still advanced the schedule."""
    from accelerate import Accelerator

    train, _ = toy_data
    monkeypatch.setattr(Accelerator, "optimizer_step_was_skipped", property(lambda self: True))
    trainer = make_trainer(train, None, epochs=1, warmup_ratio=0.5)
    trainer.train()
    assert trainer.global_step == 12 and trainer.scheduler.last_epoch == 0


def test_slanted_triangular_ends_each_group_at_its_peak_over_32():
    first, second = torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([{"params": [first]}, {"params": [second], "lr": 0.25}], lr=1.0)
    sched = make_scheduler(opt, "slanted_triangular", warmup_steps=10, total_steps=100)
    for _ in range(100):
        opt.step()
        sched.step()
    assert sched.get_last_lr() == pytest.approx([1 / 32, 0.25 / 32])


def test_param_group_lr_scale_is_relative_to_the_configured_rate(toy_data):
    train, _ = toy_data
    model = TinyClassifier()
    groups = [{"params": list(model.embed.parameters()), "lr_scale": 0.5},
              {"params": list(model.out.parameters())}]
    trainer = Trainer(model, TrainingConfig(learning_rate=0.1, schedule="constant",
                                            warmup_ratio=0, max_steps=1, progress=False),
                      train_dataset=train, param_groups=groups)
    trainer.train()
    assert [g["lr"] for g in trainer.optimizer.param_groups] == pytest.approx([0.05, 0.1])


def test_batched_outputs_in_dataset_order_cut_to_each_length(toy_data):
    from course_lib.training import batched_outputs

    _, evals = toy_data
    model = TinyClassifier().train()
    outputs = batched_outputs(model, evals, batch_size=5)
    assert model.training  # restored
    assert len(outputs["logits"]) == len(evals)
    for row, logits in zip(evals, outputs["logits"]):
        single = model.eval()(**{k: torch.tensor([v]) for k, v in row.items()})["logits"][0]
        torch.testing.assert_close(logits, single.detach())

    def embed(m, batch):
        return {"states": m.embed(batch["input_ids"])}

    states = batched_outputs(model, evals, forward=embed, sequence_outputs=["states"])["states"]
    assert [s.shape[0] for s in states] == [len(r["input_ids"]) for r in evals]


# ------------------------------------------------------------- atomic folders (item 12)
def folder(path, text):
    path.mkdir(parents=True)
    (path / "a.txt").write_text(text)
    (path / "b.txt").write_text(text)


def content(path):
    return {p.name: p.read_text() for p in path.iterdir()} if path.is_dir() else None


def test_a_failed_write_leaves_the_old_folder_and_others_siblings(tmp_path):
    from course_lib.artifacts import save_atomically

    target = tmp_path / "model"
    folder(target, "old")
    folder(tmp_path / "model.tmp", "someone else's")  # deleted by the old code
    folder(tmp_path / "model.old", "someone else's too")

    def write_then_fail(tmp):
        (tmp / "a.txt").write_text("new")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        save_atomically(target, write_then_fail)
    assert content(target) == {"a.txt": "old", "b.txt": "old"}
    assert content(tmp_path / "model.tmp") == {"a.txt": "someone else's",
                                               "b.txt": "someone else's"}
    assert content(tmp_path / "model.old") is not None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model", "model.old", "model.tmp"]


def test_every_rename_keeps_a_complete_folder(tmp_path, monkeypatch):
    """Each rename happens only when the new folder is complete, and leaves the old folder
    complete on disk until the new one is in place; a failed swap puts the old one back."""
    import os

    from course_lib import artifacts

    target = tmp_path / "model"
    folder(target, "old")
    real_rename, calls = os.rename, []
    texts = {}

    def two(text):
        return {"a.txt": text, "b.txt": text}

    def checked_rename(src, dst, fail_on=None):
        folders = [content(p) for p in tmp_path.iterdir()]
        assert two(texts["old"]) in folders and two(texts["new"]) in folders, folders
        assert Path(dst).name.startswith(".model.") or Path(src).name.startswith(".model.")
        calls.append(Path(src).name)
        if len(calls) == fail_on:
            raise OSError("rename failed")
        real_rename(src, dst)
        assert content(target) == two(texts["new"]) or two(texts["old"]) in [
            content(p) for p in tmp_path.iterdir()]

    def write(text):
        return lambda tmp: [(tmp / name).write_text(text) for name in ("a.txt", "b.txt")]

    texts.update(old="old", new="new")
    monkeypatch.setattr(artifacts.os, "rename", checked_rename)
    artifacts.save_atomically(target, write("new"))
    assert content(target) == two("new") and len(calls) == 2  # old aside, new in
    assert [p.name for p in tmp_path.iterdir()] == ["model"]

    calls.clear()  # now the second rename (the new folder into place) fails
    texts.update(old="new", new="newer")
    monkeypatch.setattr(artifacts.os, "rename", lambda s, d: checked_rename(s, d, fail_on=2))
    with pytest.raises(OSError, match="rename failed"):
        artifacts.save_atomically(target, write("newer"))
    assert content(target) == two("new")
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


def test_a_killed_write_leaves_the_old_folder(tmp_path):
    import subprocess
    import sys

    target = tmp_path / "model"
    folder(target, "old")
    script = ("import os, signal, sys\n"
              "from pathlib import Path\n"
              "from course_lib.artifacts import save_atomically\n"
              "def write(tmp):\n"
              "    (tmp / 'a.txt').write_text('new')\n"
              "    os.kill(os.getpid(), signal.SIGKILL)\n"
              "save_atomically(Path(sys.argv[1]), write)\n")
    result = subprocess.run([sys.executable, "-c", script, str(target)], timeout=120)
    assert result.returncode == -9
    assert content(target) == {"a.txt": "old", "b.txt": "old"}


def test_rotation_deletes_only_this_runs_checkpoints(toy_data, tmp_path):
    import json

    train, evals = toy_data
    foreign = tmp_path / "checkpoints" / "step-0000001"
    folder(foreign, "another run")
    (foreign / "state.json").write_text(json.dumps({"run_id": "another-run"}))
    trainer = make_trainer(train, evals, tmp_path, epochs=2)
    trainer.train()
    names = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert names == ["step-0000001", "step-0000024"]
    assert content(foreign)["a.txt"] == "another run"


def test_evaluating_during_training_leaves_the_dropout_stream_alone(toy_data):
    """A DataLoader draws its base seed from the global torch generator at each iteration:
    evaluating after epoch 1 changed epoch 2's dropout masks, so a run with an eval set
    no longer repeated the same run without one (notebook 03's hand-written loop)."""
    train, evals = toy_data
    losses = []
    for eval_dataset in (None, evals):
        seed_everything(0)
        model = tiny_bert(hidden_dropout_prob=0.3)
        trainer = Trainer(model, TrainingConfig(epochs=2, batch_size=8, progress=False,
                                                verbose=False, log_every=1, seed=3),
                          train_dataset=train, eval_dataset=eval_dataset)
        trainer.train()
        losses.append([s["train_loss"] for s in trainer.history.steps])
    assert len(trainer.history.evals) == 2
    assert losses[0] == losses[1]


class CtrlCDuringOptimizerStep(Callback):
    """Sends this process SIGINT from inside ``optimizer.step`` at step ``at_step``: the
    weights have moved and the step counter has not, the worst moment for a checkpoint
    (the command-line resume test hit it by chance)."""

    def __init__(self, at_step, presses=1):
        self.at_step, self.presses = at_step, presses

    def on_train_begin(self, trainer):
        import os
        import signal

        step = trainer.optimizer.step

        def step_and_interrupt(*args, **kwargs):
            result = step(*args, **kwargs)
            if trainer.global_step + 1 == self.at_step:
                for _ in range(self.presses):
                    os.kill(os.getpid(), signal.SIGINT)
            return result

        trainer.optimizer.step = step_and_interrupt


def test_ctrl_c_during_an_optimizer_step_finishes_it_and_resumes_exactly(toy_data, tmp_path,
                                                                          capsys):
    import signal

    train, evals = toy_data
    reference = make_trainer(train, evals)
    reference.train()
    before = signal.getsignal(signal.SIGINT)
    interrupted = make_trainer(train, evals, tmp_path, verbose=True)
    interrupted.callbacks.append(CtrlCDuringOptimizerStep(at_step=7))
    with pytest.raises(KeyboardInterrupt):
        interrupted.train()
    assert signal.getsignal(signal.SIGINT) is before  # the user's handler is back
    assert interrupted.global_step == 7
    assert "stopping after the current optimizer step" in capsys.readouterr().out
    assert [p.name for p in (tmp_path / "checkpoints").glob("step-*")] == ["step-0000007"]
    torch.manual_seed(1234)
    resumed = make_trainer(train, evals, tmp_path)
    resumed.train(resume_from="latest")
    for name, value in weights(resumed).items():
        torch.testing.assert_close(value, weights(reference)[name], rtol=0, atol=1e-6, msg=name)


def test_a_second_ctrl_c_stops_at_once_and_keeps_the_last_exact_checkpoint(toy_data, tmp_path,
                                                                           capsys):
    train, evals = toy_data
    trainer = make_trainer(train, evals, tmp_path, verbose=True, save_every=4)
    trainer.callbacks.append(CtrlCDuringOptimizerStep(at_step=7, presses=2))
    with pytest.raises(KeyboardInterrupt):
        trainer.train()
    assert trainer.global_step == 6  # stopped inside step 7's optimizer step
    assert [p.name for p in (tmp_path / "checkpoints").glob("step-*")] == ["step-0000004"]
    assert "the newest checkpoint" in capsys.readouterr().out


def test_ctrl_c_during_the_last_step_lets_the_run_finish(toy_data, tmp_path):
    """The last step completes the run: stopping there would lose a finished model."""
    train, evals = toy_data
    trainer = make_trainer(train, evals, tmp_path, epochs=1)
    steps = math.ceil(len(train) / 8)
    trainer.callbacks.append(CtrlCDuringOptimizerStep(at_step=steps))
    trainer.train()  # no KeyboardInterrupt
    assert trainer.global_step == steps
