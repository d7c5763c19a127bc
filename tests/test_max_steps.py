"""COURSE_MAX_STEPS (issue 19 item 2): one switch caps every training run, so a smoke run of
every notebook with a bert-base-shaped model finishes on 2 CPU cores."""

import json

import pytest

from course_lib import settings
from course_lib.settings import CourseError
from course_lib.training import Trainer, TrainingConfig
from tests.conftest import TinyClassifier

LEARNING_RATE = 0.05
FULL_RUN = 48  # 96 toy examples / batch 8 = 12 steps per epoch, 4 epochs


def run(toy_data, **overrides):
    settings.seed_everything(0)
    train, evals = toy_data
    options = dict(learning_rate=LEARNING_RATE, epochs=4, batch_size=8, warmup_ratio=0.2,
                   log_every=1, verbose=True, progress=False)
    trainer = Trainer(TinyClassifier(), TrainingConfig(**{**options, **overrides}),
                      train_dataset=train, eval_dataset=evals)
    return trainer, trainer.train()


def test_the_cap_shortens_a_run_and_its_schedule_still_completes(toy_data, monkeypatch, capsys):
    monkeypatch.setenv("COURSE_MAX_STEPS", "5")
    trainer, history = run(toy_data)
    assert trainer.total_steps == trainer.global_step == 5
    assert [s["step"] for s in history.steps] == [1, 2, 3, 4, 5]
    rates = [s["lr"] for s in history.steps]
    # warmup (20% of the capped run: 1 step) up to the peak, then linear decay to zero at step 5
    assert rates[0] == pytest.approx(LEARNING_RATE) and rates[-1] == 0.0
    assert rates == sorted(rates, reverse=True)
    assert len(history.evals) == 1 and history.evals[0]["step"] == 5  # the final evaluation
    out = capsys.readouterr().out
    assert f"COURSE_MAX_STEPS=5: stopping after 5 of {FULL_RUN} steps" in out


def test_a_cap_above_the_run_changes_nothing_and_says_nothing(toy_data, monkeypatch, capsys):
    monkeypatch.setenv("COURSE_MAX_STEPS", "1000")
    assert settings.max_steps_cap() == 1000
    trainer, _ = run(toy_data, max_steps=6, eval_every=None)
    assert trainer.total_steps == trainer.global_step == 6
    assert "COURSE_MAX_STEPS" not in capsys.readouterr().out


def test_unset_or_empty_changes_nothing(toy_data, monkeypatch, capsys):
    monkeypatch.setenv("COURSE_MAX_STEPS", " ")
    assert settings.max_steps_cap() is None
    monkeypatch.delenv("COURSE_MAX_STEPS")
    assert settings.max_steps_cap() is None and settings.capped_steps(FULL_RUN) == FULL_RUN
    trainer, history = run(toy_data, eval_every=None)
    assert trainer.total_steps == trainer.global_step == FULL_RUN
    assert history.steps[-1]["lr"] == 0.0
    assert "COURSE_MAX_STEPS" not in capsys.readouterr().out


@pytest.mark.parametrize("value", ["0", "-3", "five", "2.5"])
def test_an_invalid_cap_is_one_clear_line(toy_data, monkeypatch, value):
    monkeypatch.setenv("COURSE_MAX_STEPS", value)
    with pytest.raises(CourseError) as info:
        settings.max_steps_cap()
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"COURSE_MAX_STEPS={value!r}")
    with pytest.raises(CourseError, match="COURSE_MAX_STEPS"):
        run(toy_data)  # a training run refuses it too, before any step


def test_capped_gives_a_hand_written_loop_at_most_the_cap(monkeypatch):
    monkeypatch.delenv("COURSE_MAX_STEPS", raising=False)
    assert list(settings.capped(range(7))) == list(range(7))
    monkeypatch.setenv("COURSE_MAX_STEPS", "3")
    assert list(settings.capped(range(7))) == [0, 1, 2]
    assert list(settings.capped(iter(range(2)))) == [0, 1]
    assert settings.capped_steps(7) == 3 and settings.capped_steps(2) == 2


def test_the_cap_also_bounds_every_split_the_course_loads(monkeypatch, tmp_path):
    from course_lib import data

    costs = tmp_path / "costs.jsonl"
    monkeypatch.setenv("COURSE_COSTS", str(costs))
    monkeypatch.setenv("COURSE_NOTEBOOK", "nb.ipynb")
    monkeypatch.setenv("COURSE_MAX_STEPS", "1")
    capped = data.load_dataset("finance", source="bundled", verbose=False)
    assert {split: len(part) for split, part in capped.items()} == \
        {"train": 32, "validation": 32, "test": 32}
    assert capped.source.startswith("bundled")
    record = json.loads(costs.read_text())
    assert record["kind"] == "dataset" and record["full_sizes"]["train"] == 420
    monkeypatch.delenv("COURSE_MAX_STEPS")
    assert len(data.load_dataset("finance", source="bundled", verbose=False)["train"]) == 420


def test_a_qa_split_keeps_fewer_questions_than_a_classification_split(monkeypatch):
    """A QA question over a long article is tens of windows: the smoke cap counts questions."""
    from course_lib import data

    monkeypatch.setenv("COURSE_MAX_STEPS", "2")
    capped = data.load_dataset("biomedical_qa", source="bundled", verbose=False)
    assert {split: len(part) for split, part in capped.items()} == \
        {"train": 8, "validation": 8, "test": 8}
    assert settings.max_examples_cap() == 64


def test_a_training_run_records_its_cost_for_the_smoke_table(toy_data, monkeypatch, tmp_path):
    costs = tmp_path / "costs.jsonl"
    monkeypatch.setenv("COURSE_COSTS", str(costs))
    monkeypatch.setenv("COURSE_NOTEBOOK", "nb.ipynb")
    monkeypatch.setenv("COURSE_MAX_STEPS", "3")
    trainer, history = run(toy_data)
    record = json.loads(costs.read_text())
    train, _ = toy_data
    assert record["kind"] == "training" and record["notebook"] == "nb.ipynb"
    assert record["steps"] == 3 and record["configured_steps"] == FULL_RUN
    assert record["train_examples"] == len(train)
    assert 0 < record["tokens"] <= record["positions"] <= 3 * 8 * max(
        len(row["input_ids"]) for row in train)
    assert record["parameters"] == record["trainable"] == sum(
        p.numel() for p in trainer.unwrapped_model.parameters())
    monkeypatch.delenv("COURSE_COSTS")
    run(toy_data)
    assert len(costs.read_text().splitlines()) == 1  # nothing recorded without the variable


def test_a_run_stopped_mid_epoch_still_logs_its_last_step(toy_data, monkeypatch):
    monkeypatch.setenv("COURSE_MAX_STEPS", "2")
    _, history = run(toy_data, log_every=10)
    assert [s["step"] for s in history.steps] == [2]  # was empty: nothing to plot
