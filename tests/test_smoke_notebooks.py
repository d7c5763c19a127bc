"""The full profile's smoke run (issue 19): training notebooks on a bert-base-shaped model.

``tools/smoke_full_profile.py`` executes the notebooks with ``COURSE_PROFILE=full``, the
stand-in of ``tools/make_standin.py`` (12 layers, 768 wide, random weights, no download) and
the real files in ``../shared/datasets``, 2 optimizer steps per training run and 64
examples per split. A notebook fails on any error except its learning asserts, which a
random-weight model fails by design. Skipped when ``../shared/datasets`` is absent.

The notebooks below cover every fine-tuning strategy (layer-wise, adapters, LoRA, full
fine-tuning inside the case study), the custom heads and the financial case study, in
about 15 minutes on 2 CPU cores. The others take longer on a CPU (tuning: about 9 minutes,
the medical case study's 512-token windows: about 15); the README's table covers every
notebook, from ``python tools/smoke_full_profile.py ... notebooks/*.ipynb``.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from course_lib import settings

ROOT = Path(__file__).resolve().parents[1]
SHARED = settings.shared_datasets_dir()
NOTEBOOKS = ["04_layerwise_finetuning.ipynb", "05_adapters_and_lora.ipynb",
             "07_custom_heads.ipynb", "11_case_finance.ipynb"]
# bert-base's 12 layers of 768 hold 85M weights (109M with the embeddings); the quick
# backbone has 22.7M in all, so a trained model this large is the stand-in's
BERT_BASE_LAYERS = 85_000_000

pytestmark = pytest.mark.skipif(SHARED is None, reason="../shared/datasets is not present")


@pytest.mark.timeout(3600)
def test_training_notebooks_run_in_the_full_profile_on_a_bert_base_shaped_model(tmp_path):
    standin = tmp_path / "standin-bert-base"
    made = subprocess.run([sys.executable, "tools/make_standin.py", str(standin)], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert made.returncode == 0, made.stderr[-2000:]
    results = tmp_path / "smoke"
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("COURSE_") and k != "HF_HUB_OFFLINE"}
    done = subprocess.run(
        [sys.executable, "tools/smoke_full_profile.py", "--model", str(standin),
         "--data-dir", str(SHARED), "--results", str(results),
         *[f"notebooks/{name}" for name in NOTEBOOKS]],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=3500)
    assert done.returncode == 0, (done.stdout[-3000:], done.stderr[-5000:])
    rows = json.loads(results.with_suffix(".json").read_text())["notebooks"]
    assert sorted(rows) == sorted(NOTEBOOKS)
    for name, row in rows.items():
        assert "error" not in row, (name, row)
        cost = row["cost"]
        assert cost["training runs"] >= 1, name
        assert cost["steps"] <= 2 * cost["training runs"], name  # the cap held
        assert cost["largest model parameters"] >= BERT_BASE_LAYERS, name  # the stand-in
        assert cost["datasets"], name  # the real files were read (and capped)
