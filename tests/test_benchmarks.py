"""The benchmark scripts: they skip cleanly without the real datasets, and the
README's tables are the ones the scripts last wrote."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"

# script -> the option that points it at a data folder
NEEDS_SHARED_DATA = {
    "strategies_fpb": "--data",
    "full_recipe_fpb": "--data",
    "case_finance_fpb": "--data-dir",
    "case_pubmedqa": "--data-dir",
    "case_medical": "--data-dir",
    "case_covidqa": "--data-dir",
    "pretraining": "--data-dir",
    "inference": "--data",
}


@pytest.mark.parametrize("script", sorted(NEEDS_SHARED_DATA))
def test_benchmark_skips_without_the_real_datasets(script, tmp_path):
    """`make bench` on a machine without ../shared must not fail: one line, exit 0."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / f"{script}.py"),
         NEEDS_SHARED_DATA[script], str(tmp_path / "empty")],
        cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().startswith("skipped:"), done.stdout
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "empty").exists()


def test_readme_holds_every_benchmark_table():
    """`python benchmarks/run_all.py --readme-only` was run after the last benchmark."""
    readme = (ROOT / "README.md").read_text()
    tables = sorted(RESULTS.glob("*.md"))
    assert tables, "no benchmark results"
    stale = [t.name for t in tables if t.read_text().strip() not in readme]
    assert not stale, f"README is out of date for {stale}: run python benchmarks/run_all.py " \
                      "--readme-only"


def test_every_results_table_belongs_to_a_benchmark():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import run_all
    finally:
        sys.path.pop(0)
    names = {name for name, _, _ in run_all.BENCHMARKS}
    orphans = [t.name for t in RESULTS.glob("*.md")
               if not any(t.stem == n or t.stem.startswith(n + "_") for n in names)]
    assert not orphans, f"results without a benchmark in run_all.BENCHMARKS: {orphans}"
