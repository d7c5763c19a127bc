"""An interrupted ``python -m course_lib classify`` resumes to the weights of an uninterrupted run.

Three real command-line processes start together on a small CSV with a tiny 2-layer
BERT (``--model``, the default layerwise strategy, so gradual unfreezing's state must
survive the resume too): one runs to the end; one gets Ctrl-C (SIGINT) and one is
killed (SIGKILL) mid-epoch, each after a checkpoint exists. Both are then run again
with ``--resume``. The final ``model/`` weights must equal the uninterrupted run's, and a
``model/`` folder that was there before (an earlier run's) must be intact at every
moment until the resumed run replaces it whole. About 40 s on 2 quiet cores.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "finance" / "finance_sample.csv"
STEPS_BEFORE_INTERRUPT = 4  # --save-every 2: checkpoints at steps 2 and 4 exist by then


def command(data: Path, out: Path, model: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "course_lib", "classify", "--train", str(data / "train.csv"),
            "--eval", str(data / "eval.csv"), "--text-column", "sentence", "--label-column",
            "label", "--model", str(model), "--epochs", "2", "--batch-size", "4",
            "--max-length", "32", "--seed", "7", "--save-every", "2", "--output-dir", str(out),
            *extra]


def start(args: list[str], cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "CI": "true", "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(args, cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def checkpoint_steps(out: Path) -> list[int]:
    return sorted(int(p.name.split("-")[1]) for p in (out / "checkpoints").glob("step-*")
                  if (p / "state.json").is_file())


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def weights(out: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(out / "model" / "model.safetensors"))


@pytest.mark.slow
def test_interrupted_runs_resume_to_the_same_weights(tmp_path, tiny_model_dir):
    rows = pd.read_csv(SAMPLE).sample(n=240, random_state=0)
    rows.iloc[:200].to_csv(tmp_path / "train.csv", index=False)  # 50 steps per epoch
    rows.iloc[200:].to_csv(tmp_path / "eval.csv", index=False)
    earlier = {}
    for name in ("sigint", "sigkill"):  # an earlier run's model, which must survive
        model_dir = tmp_path / name / "model"
        model_dir.mkdir(parents=True)
        (model_dir / "model.safetensors").write_bytes(b"an earlier run's weights")
        (model_dir / "config.json").write_text("{}")
        earlier[name] = snapshot(model_dir)

    runs = {name: start(command(tmp_path, tmp_path / name, tiny_model_dir), tmp_path)
            for name in ("reference", "sigint", "sigkill")}
    signals = {"sigint": signal.SIGINT, "sigkill": signal.SIGKILL}
    deadline = time.monotonic() + 300
    while signals and time.monotonic() < deadline:
        for name in list(signals):
            assert snapshot(tmp_path / name / "model") == earlier[name], name
            assert runs[name].poll() is None, f"{name} ended before it was interrupted"
            steps = checkpoint_steps(tmp_path / name)
            if steps and steps[-1] >= STEPS_BEFORE_INTERRUPT:
                runs[name].send_signal(signals.pop(name))
        time.sleep(0.02)
    assert not signals, "no checkpoint appeared in time"
    outputs = {}
    for name, run in runs.items():
        outputs[name] = run.communicate(timeout=300)
        expected = {"reference": 0, "sigint": 130, "sigkill": -signal.SIGKILL}[name]
        assert run.returncode == expected, f"{name}: {outputs[name][0][-1000:]}\n" \
            f"{outputs[name][1][-3000:]}"
    assert "run the same command with --resume to continue" in outputs["sigint"][1]
    for name in ("sigint", "sigkill"):
        assert snapshot(tmp_path / name / "model") == earlier[name], name
        assert STEPS_BEFORE_INTERRUPT <= checkpoint_steps(tmp_path / name)[-1] < 100, name

    resumed = {name: start(command(tmp_path, tmp_path / name, tiny_model_dir, "--resume"),
                           tmp_path) for name in ("sigint", "sigkill")}
    expected = weights(tmp_path / "reference")
    for name, run in resumed.items():
        stdout, stderr = run.communicate(timeout=300)
        assert run.returncode == 0, f"{name}: {stdout[-1000:]}\n{stderr[-3000:]}"
        assert "resumed from" in stdout + stderr, name
        got = weights(tmp_path / name)
        assert got.keys() == expected.keys()
        for key, value in expected.items():
            torch.testing.assert_close(got[key], value, rtol=0, atol=1e-6, msg=f"{name} {key}")
        assert not (tmp_path / name / "checkpoints").exists()  # removed after success
