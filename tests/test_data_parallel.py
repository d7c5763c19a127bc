"""``python -m course_lib classify`` under 2 CPU processes (torchrun, gloo) is data parallelism.

Each global batch of ``batch_size x processes`` examples is split between the
processes and their gradients are averaged, so a 2-process run with ``--batch-size 4``
must train the same model as a 1-process run with ``--batch-size 8``. The test runs
both on a small file and checks that

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
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

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


def classify(setup: Path, name: str, batch_size: int, processes: int, strategy: str):
    """Run the command (1 process: plain python; 2: torchrun); return (result, output dir)."""
    out, weights = setup / name, setup / f"{name}-weights"
    weights.mkdir()
    launcher = [sys.executable]
    if processes > 1:
        launcher += ["-m", "torch.distributed.run", "--standalone",
                     f"--nproc_per_node={processes}"]
    command = [*launcher, str(setup / "wrapper.py"), "classify",
               "--train", str(setup / "train.csv"), "--eval", str(setup / "eval.csv"),
               "--text-column", "sentence", "--label-column", "label",
               "--model", str(setup / "backbone-no-dropout"), "--epochs", "1",
               "--batch-size", str(batch_size), "--seed", "42", "--strategy", strategy,
               "--output-dir", str(out)]
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
@pytest.mark.parametrize("strategy", ["full", "layerwise"])
def test_two_processes_train_the_same_model_as_one_with_the_same_global_batch(setup, strategy):
    """``layerwise`` unfreezes layers while DistributedDataParallel holds the model."""
    from course_lib import backbones

    out2, weights2 = classify(setup, f"{strategy}-two-processes", batch_size=4, processes=2,
                              strategy=strategy)
    out1, weights1 = classify(setup, f"{strategy}-one-process", batch_size=8, processes=1,
                              strategy=strategy)

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
