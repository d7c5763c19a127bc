"""The instructor guide's timing table, rendered from the measured records.

``docs/INSTRUCTOR_GUIDE.md`` has one row per notebook: its quick-profile time on 2 CPU
cores (``benchmarks/notebook_times.json``, written by ``tools/execute_notebooks.py
--budget``) and the full profile's estimated GPU training time (from
``benchmarks/full_profile_smoke.json``, written by ``tools/smoke_full_profile.py``). Both
tools call :func:`update_guide` after they write their records, so the guide never
disagrees with the README; ``tests/test_smoke_full_profile.py`` checks that it does not.
The other columns (the GPU run and the teaching slot) are the guide's own and are kept.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "tools") not in sys.path:  # tools/ is not a package: its scripts import each other
    sys.path.insert(0, str(ROOT / "tools"))
GUIDE = ROOT / "docs" / "INSTRUCTOR_GUIDE.md"
TIMES = ROOT / "benchmarks" / "notebook_times.json"
SMOKE = ROOT / "benchmarks" / "full_profile_smoke.json"
ROW = re.compile(r"\| (\d\d) \| ([^|]+) \| ([^|]+) \| ([^|]+) \| ([^|]+) \| ([^|]+) \|$")
TOTAL = re.compile(r"The whole course runs in about \d+ minutes of machine time on 2 CPU cores;")


def full_profile_cell(row: dict) -> str:
    """The guide's full-profile column for one notebook's smoke-run row."""
    from smoke_full_profile import gpu_minutes

    cost = row.get("cost") or {}
    if "error" in row or not cost:
        return "not run"
    if not cost["training runs"]:
        return "< 1 min (no training)"
    minutes = gpu_minutes(cost["full-run training TFLOP (estimate)"],
                          cost["full-run steps (estimate)"])
    return f"≈ {max(minutes, 0.1):.1f} min of training (estimate)"


def render_guide(text: str) -> str:
    """``text`` (the guide) with its timing rows and total taken from the records."""
    times = json.loads(TIMES.read_text())
    smoke = json.loads(SMOKE.read_text())["notebooks"] if SMOKE.is_file() else {}
    lines = []
    for line in text.splitlines():
        match = ROW.match(line)
        name = match and next((k for k in times if k.startswith(match.group(1) + "_")), None)
        if name:
            number, title, _, gpu_run, _, slot = match.groups()
            line = (f"| {number} | {title} | {times[name] / 60:.1f} min | {gpu_run} | "
                    f"{full_profile_cell(smoke.get(name, {}))} | {slot} |")
        lines.append(line)
    total = sum(v for k, v in times.items() if not k.startswith("_")) / 60
    return TOTAL.sub(f"The whole course runs in about {total:.0f} minutes of machine time on "
                     "2 CPU cores;", "\n".join(lines) + "\n")


def update_guide() -> None:
    """Rewrite the guide's timing table from the records (nothing else changes)."""
    if GUIDE.is_file() and TIMES.is_file():
        GUIDE.write_text(render_guide(GUIDE.read_text()))
