"""Execute notebooks in place, top to bottom, on a fresh kernel (quick profile).

    python tools/execute_notebooks.py notebooks/03_full_finetuning.ipynb [...]
    python tools/execute_notebooks.py --budget notebooks/*.ipynb   # also writes README times
    COURSE_SEED=43 python tools/execute_notebooks.py --check notebooks/*.ipynb  # store nothing

Outputs are stored in the notebook (``make execute``); with ``--check`` nothing is
written back: the run only proves that every assert holds, e.g. for another
``COURSE_SEED`` (a lesson that holds for one seed only was a lucky draw). Progress bars are hidden
(COURSE_PROGRESS=0) so stored outputs hold results, not widget noise. A notebook
that fails is not overwritten: the error is printed and the exit status is 1.
With ``--budget`` each notebook's wall time goes into ``benchmarks/notebook_times.json``
and into the README's notebook map (between the ``notebook-times`` markers).

Every run (stored or ``--check``) also collects the headline results the notebooks
record with ``course_lib.notebook.headline`` into ``benchmarks/notebook_results.json``,
one value per notebook, result and seed (a rerun with the same seed replaces its value).
The README's map shows them as mean ± standard deviation over the seeds run so far.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

ROOT = Path(__file__).resolve().parents[1]
TIMES = ROOT / "benchmarks" / "notebook_times.json"
RESULTS = ROOT / "benchmarks" / "notebook_results.json"


def execute(path: Path, timeout: int, store: bool = True) -> float:
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    started = time.perf_counter()
    client.execute()
    seconds = time.perf_counter() - started
    print("  slowest cells: " + ", ".join(f"{i} ({t:.0f} s)" for t, i in cell_seconds(nb)[:3]))
    for cell in nb.cells:  # keep metadata clean: no execution timestamps
        cell.metadata.pop("execution", None)
    nb.metadata.pop("widgets", None)
    if store:
        nbformat.write(nb, path)
    return seconds


def cell_seconds(nb) -> list[tuple[float, int]]:
    """(seconds, cell index) of every executed code cell, slowest first (from nbclient's
    timestamps, which are then removed from the stored notebook)."""
    from datetime import datetime

    out = []
    for index, cell in enumerate(nb.cells):
        stamps = cell.metadata.get("execution", {})
        if "iopub.status.busy" in stamps and "shell.execute_reply" in stamps:
            start, end = (datetime.fromisoformat(stamps[k].replace("Z", "+00:00"))
                          for k in ("iopub.status.busy", "shell.execute_reply"))
            out.append(((end - start).total_seconds(), index))
    return sorted(out, reverse=True)


def collect_headlines(lines_file: Path, completed: set[str], results: Path = RESULTS) -> None:
    """Merge the headline records of this run into ``results`` (notebook -> name -> seed).

    Only notebooks in ``completed`` count: a notebook that failed after recording its
    headline did not show its lesson, and its number is not an expected result.
    """
    if not lines_file.is_file():
        return
    data = json.loads(results.read_text()) if results.is_file() else {}
    for line in lines_file.read_text().splitlines():
        record = json.loads(line)
        if record["notebook"] not in completed:
            continue
        by_seed = data.setdefault(record["notebook"], {}).setdefault(record["name"], {})
        by_seed[str(record["seed"])] = round(record["value"], 4)
    results.write_text(json.dumps(dict(sorted(data.items())), indent=2) + "\n")


def expected_result(notebook: str) -> str:
    """``name: mean ± sd (n seeds)`` for each headline of ``notebook``, or a dash."""
    data = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    cells = []
    for name, by_seed in data.get(notebook, {}).items():
        values = list(by_seed.values())
        mean = sum(values) / len(values)
        if len(values) > 1:
            sd = (sum((v - mean) ** 2 for v in values) / (len(values) - 1)) ** 0.5
            cells.append(f"{name} {mean:.3f} ± {sd:.3f} ({len(values)} seeds)")
        else:
            cells.append(f"{name} {mean:.3f} (1 seed)")
    return "; ".join(cells) or "-"


def write_budget(times: dict[str, float]) -> None:
    data = json.loads(TIMES.read_text()) if TIMES.is_file() else {}
    data.update({k: round(v, 1) for k, v in times.items()})
    data["_machine"] = f"{os.cpu_count()} CPU cores, {platform.processor() or platform.machine()}"
    TIMES.write_text(json.dumps(dict(sorted(data.items())), indent=2) + "\n")
    readme = ROOT / "README.md"
    text = readme.read_text()
    start, end = "<!-- notebook-times:start -->", "<!-- notebook-times:end -->"
    if start not in text:
        return
    rows = ["| notebook | quick profile, 2 CPU cores (measured) | expected result "
            "(mean ± sd over the `COURSE_SEED` values run) |", "|---|---|---|"]
    total = 0.0
    for name, seconds in sorted(data.items()):
        if name.startswith("_"):
            continue
        total += seconds
        rows.append(f"| `{name}` | {seconds / 60:.1f} min | {expected_result(name)} |")
    rows.append(f"| **whole course** | **{total / 60:.1f} min** | |")
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    readme.write_text(head + start + "\n" + "\n".join(rows) + "\n" + end + tail)
    from guide_table import update_guide

    update_guide()  # the instructor guide's time column reads the same records


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("--timeout", type=int, default=600, help="seconds per cell")
    parser.add_argument("--budget", action="store_true", help="record wall times in the README")
    parser.add_argument("--check", action="store_true",
                        help="execute without storing outputs (e.g. under another COURSE_SEED)")
    args = parser.parse_args()
    if args.budget and args.check:
        parser.error("--budget records the stored run's times; drop --check")
    os.environ.setdefault("COURSE_PROFILE", "quick")
    os.environ["COURSE_PROGRESS"] = "0"
    times, failed = {}, []
    with tempfile.TemporaryDirectory() as scratch:
        headlines = Path(scratch) / "headlines.jsonl"
        os.environ["COURSE_HEADLINES"] = str(headlines)  # inherited by each new kernel
        for path in args.notebooks:
            print(f"executing {path} ...", flush=True)
            os.environ["COURSE_NOTEBOOK"] = path.name
            try:
                seconds = execute(path, args.timeout, store=not args.check)
            except CellExecutionError as err:
                failed.append(path)
                print(f"FAILED {path}:\n{str(err)[-3000:]}", file=sys.stderr)
                continue
            times[path.name] = seconds
            print(f"  {path.name}: {seconds:.1f} s", flush=True)
        if os.environ.get("COURSE_PROFILE") == "quick" and not os.environ.get("COURSE_MAX_STEPS"):
            # only complete quick-profile runs of notebooks that passed are expected results
            collect_headlines(headlines, completed=set(times))
    if args.budget and times:
        write_budget(times)
    elif RESULTS.is_file():
        write_budget({})  # refresh the README's expected results
    if failed:
        print("failed: " + ", ".join(p.name for p in failed), file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
