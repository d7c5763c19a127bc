"""tools/smoke_full_profile.py: asserts become soft checks; any other error still fails.

The full smoke run itself (every notebook on the bert-base-shaped stand-in and the real
files) is ``tests/test_smoke_notebooks.py``; these tests check the executor on tiny
notebooks in seconds.
"""

import nbformat
import pytest
from nbclient.exceptions import CellExecutionError

from tests.conftest import load_tool

smoke = load_tool("smoke_full_profile")


def notebook(tmp_path, *cells):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source) for source in cells]
    path = tmp_path / "tiny.ipynb"
    nbformat.write(nb, path)
    return path


def test_failed_asserts_are_recorded_and_the_notebook_runs_on(tmp_path):
    path = notebook(tmp_path, "x = 1\nassert x == 2, 'learning failed'\ny = x + 1",
                    "assert y == 2\nfor i in range(2):\n    assert i < 1")
    row = smoke.run_notebook(path, timeout=60)
    assert row["soft_failures"] == ["x == 2", "i < 1"]
    assert row["peak_rss_mb"] > 0
    assert "SMOKE" not in path.read_text()  # nothing written back


def test_other_errors_still_fail_the_notebook(tmp_path):
    path = notebook(tmp_path, "assert False", "raise ValueError('a real bug')")
    with pytest.raises(CellExecutionError, match="a real bug"):
        smoke.run_notebook(path, timeout=60)


def test_the_table_shows_the_estimate_with_its_arithmetic():
    runs = [{"kind": "dataset", "notebook": "n", "dataset": "finance",
             "full_sizes": {"train": 640}, "kept": {"train": 64}},
            {"kind": "training", "notebook": "n", "steps": 2, "configured_steps": 30,
             "train_examples": 64, "train_seconds": 20.0, "positions": 2 * 16 * 100,
             "tokens": 2500, "parameters": 110_000_000, "trainable": 100_000_000}]
    cost = smoke.summarise(runs)
    assert cost["seconds per step"] == 10.0 and cost["positions per step"] == 1600
    assert cost["full-run steps (estimate)"] == 300  # 30 configured x 640 / 64
    flops = 6 * 110e6 * 1600 * 300
    assert cost["full-run training TFLOP (estimate)"] == round(flops / 1e12, 1)
    assert cost["GPU minutes (estimate)"] == round(
        (flops / smoke.GPU_FLOPS + 300 * smoke.GPU_STEP_OVERHEAD) / 60, 1)


def test_the_instructor_guide_agrees_with_the_measured_records():
    """Its 2-core times and full-profile estimates are the README's: rendered, never typed."""
    guide = load_tool("guide_table")
    text = guide.GUIDE.read_text()
    assert guide.render_guide(text) == text, "run python tools/smoke_full_profile.py --render " \
                                             "--readme (it rewrites the guide's table)"
    assert text.count("min of training (estimate)") >= 10
