"""``python -m course_lib classify`` under 2 CPU processes (torchrun, gloo) is data parallelism.

Each global batch of ``batch_size x processes`` examples is split between the
processes and their gradients are averaged, so a 2-process run with ``--batch-size 4``
must train the same model as a 1-process run with ``--batch-size 8``. The test runs
both on a small file, twice: the layer-wise strategy (the model's own loss, layers
unfrozen while DistributedDataParallel holds the model) and full fine-tuning with
``--class-weights balanced`` (the Trainer's ``compute_loss``), and checks that

- the two processes end with bit-identical weights;
- those weights match the 1-process run's within float round-off (their distance is
  under 0.1% of the distance the training moved the weights);
- the 2-process run wrote one complete model folder and metrics.json with the same
  accuracy as the 1-process run.

Dropout is switched off (a copy of the backbone's config with dropout 0): dropout masks
are random draws, and two processes draw different ones than one process does, which
would hide the comparison in noise. To see every process's weights, the command runs
through a small wrapper that saves them after training (``RANK_WEIGHTS_DIR``).
About a minute on 2 quiet cores (process start-up dominates).

A second test evaluates 9 examples on 2 processes (and on 1): every example exactly
once, in dataset order, with the same loss and metrics as one process, also for
per-token outputs of different lengths on the two processes (as QA logits).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "finance" / "finance_sample.csv"

WRAPPER = '''\
"""Run the course's command line, then save this process's weights (test instrumentation)."""
import os
import sys

from safetensors.torch import save_file

from course_lib import cli, training

train = training.Trainer.train


def train_and_save_weights(self, *args, **kwargs):
    history = train(self, *args, **kwargs)
    state = {k: v.detach().cpu().clone().contiguous()
             for k, v in self.unwrapped_model.state_dict().items()}
    name = f"rank{self.accelerator.process_index}.safetensors"
    save_file(state, os.path.join(os.environ["RANK_WEIGHTS_DIR"], name))
    return history


training.Trainer.train = train_and_save_weights
sys.exit(cli.main(sys.argv[1:]))
'''


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A 64/32-row train/eval CSV, a dropout-free backbone folder and the wrapper script."""
    from course_lib import backbones

    root = tmp_path_factory.mktemp("data_parallel")
    rows = pd.read_csv(SAMPLE).sample(frac=1.0, random_state=0)
    rows.iloc[:64].to_csv(root / "train.csv", index=False)  # 64 = 8 global batches of 8
    rows.iloc[64:96].to_csv(root / "eval.csv", index=False)
    # a validation file for calibration, so that all 64 training rows train (classify
    # would otherwise hold out 10% of them and leave a remainder batch)
    rows.iloc[96:128].to_csv(root / "validation.csv", index=False)
    backbone = root / "backbone-no-dropout"
    backbone.mkdir()
    source = backbones.packaged_backbone_dir()
    for item in source.iterdir():
        if item.name != "config.json":
            (backbone / item.name).symlink_to(item)
    config = json.loads((source / "config.json").read_text())
    config.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    (backbone / "config.json").write_text(json.dumps(config))
    (root / "wrapper.py").write_text(WRAPPER)
    return root


def classify(setup: Path, name: str, batch_size: int, processes: int, strategy: str,
             extra: tuple[str, ...] = ()):
    """Run the command (1 process: plain python; 2: torchrun); return (result, output dir)."""
    out, weights = setup / name, setup / f"{name}-weights"
    weights.mkdir()
    launcher = [sys.executable]
    if processes > 1:
        launcher += ["-m", "torch.distributed.run", "--standalone",
                     f"--nproc_per_node={processes}"]
    command = [*launcher, str(setup / "wrapper.py"), "classify",
               "--train", str(setup / "train.csv"), "--eval", str(setup / "eval.csv"),
               "--validation", str(setup / "validation.csv"),
               "--text-column", "sentence", "--label-column", "label",
               "--model", str(setup / "backbone-no-dropout"), "--epochs", "1",
               "--batch-size", str(batch_size), "--seed", "42", "--strategy", strategy,
               "--output-dir", str(out), *extra]
    env = {**os.environ, "RANK_WEIGHTS_DIR": str(weights), "CI": "true",
           "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=setup,
                            timeout=600)
    assert result.returncode == 0, f"{command}\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}"
    return out, weights


def load(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(path))


def distance(a: dict, b: dict) -> float:
    return float(sum(((a[k].double() - b[k].double()) ** 2).sum() for k in a) ** 0.5)


@pytest.mark.slow
@pytest.mark.parametrize("strategy, extra", [
    ("layerwise", ()), ("full", ("--class-weights", "balanced"))],
    ids=["layerwise", "full-class-weights"])  # the model's own loss, and a compute_loss
def test_two_processes_train_the_same_model_as_one_with_the_same_global_batch(setup, strategy,
                                                                              extra):
    """``layerwise`` unfreezes layers while DistributedDataParallel holds the model; the
    class-weighted loss must not depend on how the global batch is split."""
    from course_lib import backbones

    name = strategy + "".join(extra)
    out2, weights2 = classify(setup, f"{name}-two-processes", batch_size=4, processes=2,
                              strategy=strategy, extra=extra)
    out1, weights1 = classify(setup, f"{name}-one-process", batch_size=8, processes=1,
                              strategy=strategy, extra=extra)

    rank0, rank1 = load(weights2 / "rank0.safetensors"), load(weights2 / "rank1.safetensors")
    assert rank0.keys() == rank1.keys()
    assert all(torch.equal(rank0[k], rank1[k]) for k in rank0), "the processes diverged"

    single = load(weights1 / "rank0.safetensors")
    metrics1 = json.loads((out1 / "metrics.json").read_text())
    initial = backbones.load_model("classification", str(setup / "backbone-no-dropout"),
                                   labels=metrics1["labels"], seed=42).state_dict()
    moved = distance(single, {k: initial[k] for k in single})
    apart = distance(rank0, single)
    assert moved > 0.1, f"training barely moved the weights ({moved})"
    assert apart < 1e-3 * moved, f"2 processes vs 1: {apart:.2e}, training moved {moved:.2e}"
    assert max(float((rank0[k] - single[k]).abs().max()) for k in single) < 1e-4

    metrics2 = json.loads((out2 / "metrics.json").read_text())
    assert metrics2["train_examples"] == metrics1["train_examples"] == 64
    assert abs(metrics2["accuracy"] - metrics1["accuracy"]) <= 1 / 32 + 1e-9
    saved = load(out2 / "model" / "model.safetensors")
    assert all(torch.allclose(saved[k], rank0[k]) for k in saved if k in rank0)
    config = json.loads((out2 / "model" / "config.json").read_text())
    assert sorted(config["id2label"].values()) == sorted(metrics1["labels"])


EVAL_SCRIPT = '''\
"""Evaluate 9 examples on however many processes run this; rank r writes rank{r}.json."""
import json
import os
import sys

import torch

sys.path.insert(0, sys.argv[2])
from course_lib.metrics import classification_metrics  # noqa: E402
from course_lib.training import Trainer, TrainingConfig  # noqa: E402
from tests.conftest import TinyClassifier, toy_examples  # noqa: E402


class TokenScorer(torch.nn.Module):
    """Per-token logits (like a QA model's start logits) and per-token labels."""

    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Embedding(50, 4)
        self.out = torch.nn.Linear(4, 1)

    def forward(self, input_ids, attention_mask, labels):
        logits = self.out(self.embed(input_ids)).squeeze(-1)
        mask = labels != -100
        loss = torch.nn.functional.binary_cross_entropy_with_logits(
            logits[mask], labels[mask].float())
        return {"loss": loss, "token_logits": logits}


evals = toy_examples(9, seed=3)
tagged = [{**r, "labels": [int(t == 7) for t in r["input_ids"]]} for r in evals]
config = dict(progress=False, verbose=False, epochs=1, batch_size=4)
result = {}
for batch_size in (2, 4, 16):
    torch.manual_seed(0)
    trainer = Trainer(TinyClassifier(), TrainingConfig(eval_batch_size=batch_size, **config),
                      compute_metrics=classification_metrics(["no", "yes"]))
    preds = trainer.predict(evals)
    metrics = trainer.evaluate(evals)
    torch.manual_seed(0)
    tokens = Trainer(TokenScorer(), TrainingConfig(eval_batch_size=batch_size, **config))
    token_preds = tokens.predict(tagged)
    lengths = [len(r["input_ids"]) for r in tagged]
    result[batch_size] = {
        "logits": preds.logits.tolist(), "labels": preds.label_ids.tolist(),
        "loss": preds.loss, "metrics": metrics,
        "token_logits": [row[:n].tolist() for row, n in zip(
            token_preds.outputs["token_logits"], lengths)],
        "token_labels": [row[:n].tolist() for row, n in zip(token_preds.labels["labels"],
                                                            lengths)],
        "token_loss": token_preds.loss}
trainer = Trainer(TinyClassifier(), TrainingConfig(max_steps=1, **config),
                  train_dataset=toy_examples(16, seed=4))
trainer.train()
result["seed"] = torch.initial_seed()  # set by train(): the config seed + the process index
rank = trainer.accelerator.process_index
with open(os.path.join(sys.argv[1], f"rank{rank}.json"), "w") as f:
    json.dump(result, f)
trainer.accelerator.end_training()  # leave the process group before Python shuts down
'''


def run_eval_script(tmp_path: Path, processes: int) -> list[dict]:
    out = tmp_path / f"{processes}-processes"
    out.mkdir()
    script = tmp_path / "evaluate.py"
    script.write_text(EVAL_SCRIPT)
    launcher = [sys.executable]
    if processes > 1:
        launcher += ["-m", "torch.distributed.run", "--standalone",
                     f"--nproc_per_node={processes}"]
    env = {**os.environ, "CI": "true", "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    result = subprocess.run([*launcher, str(script), str(out), str(ROOT)], capture_output=True,
                            text=True, env=env, timeout=600)
    assert result.returncode == 0, f"{result.stdout[-2000:]}\n{result.stderr[-4000:]}"
    return [json.loads((out / f"rank{r}.json").read_text()) for r in range(processes)]


@pytest.mark.slow
def test_two_processes_evaluate_every_example_once_in_order(tmp_path):
    """Item 1: 9 examples on 2 processes gave 8 rows (remainder skipped) or repeated the last.

    Batch sizes 2, 4 and 16 leave 1, 1 and 9 examples for the last round; per-token outputs
    (as QA logits) have different lengths on the two processes and must be padded to gather.
    """
    from tests.conftest import toy_examples

    single, = run_eval_script(tmp_path, 1)
    ranks = run_eval_script(tmp_path, 2)
    expected_labels = [r["labels"] for r in toy_examples(9, seed=3)]
    for rank in ranks:
        for batch_size, got in ((k, v) for k, v in rank.items() if k != "seed"):
            one = single[batch_size]
            assert got["labels"] == expected_labels, batch_size
            assert len(got["logits"]) == 9
            assert np.allclose(got["logits"], one["logits"], atol=1e-6), batch_size
            assert got["loss"] == pytest.approx(one["loss"], rel=1e-6), batch_size
            assert got["metrics"] == pytest.approx(one["metrics"], rel=1e-6), batch_size
            for a, b in zip(got["token_logits"], one["token_logits"]):
                assert np.allclose(a, b, atol=1e-6), batch_size
            assert got["token_labels"] == one["token_labels"]
            assert got["token_loss"] == pytest.approx(one["token_loss"], rel=1e-5)
    # item 8: each process seeds its own stream (different dropout masks), from the config seed
    assert [r["seed"] for r in ranks] == [single["seed"], single["seed"] + 1]
