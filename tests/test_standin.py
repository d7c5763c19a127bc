"""tools/make_standin.py: a bert-base-shaped checkpoint that the course's loaders read."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_standin_has_bert_base_shape_and_loads_for_every_task(tmp_path):
    folder = tmp_path / "standin"
    done = subprocess.run([sys.executable, str(ROOT / "tools" / "make_standin.py"), str(folder),
                           "--layers", "1"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    config = json.loads((folder / "config.json").read_text())
    assert (config["hidden_size"], config["num_attention_heads"], config["intermediate_size"],
            config["vocab_size"]) == (768, 12, 3072, 30522)
    assert (folder / "model.safetensors").is_file() and not list(folder.glob("*.bin"))

    from course_lib import backbones

    model = backbones.load_model("classification", str(folder), labels=["a", "b"], seed=0)
    assert model.config.hidden_size == 768 and model.num_labels == 2
    mlm = backbones.load_model("mlm", str(folder))
    assert mlm.config.num_hidden_layers == 1
