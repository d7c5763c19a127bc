"""Execute notebooks in place, top to bottom, on a fresh kernel (quick profile).

    python tools/execute_notebooks.py notebooks/03_full_finetuning.ipynb [...]
    python tools/execute_notebooks.py --budget notebooks/*.ipynb   # also writes README times

Outputs are stored in the notebook (``make execute``). Progress bars are hidden
(COURSE_PROGRESS=0) so stored outputs hold results, not widget noise. A notebook
that fails is not overwritten: the error is printed and the exit status is 1.
With ``--budget`` each notebook's wall time goes into ``benchmarks/notebook_times.json``
and into the README's notebook map (between the ``notebook-times`` markers).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

ROOT = Path(__file__).resolve().parents[1]
TIMES = ROOT / "benchmarks" / "notebook_times.json"


def execute(path: Path, timeout: int) -> float:
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    started = time.perf_counter()
    client.execute()
    seconds = time.perf_counter() - started
    for cell in nb.cells:  # keep metadata clean: no execution timestamps
        cell.metadata.pop("execution", None)
    nb.metadata.pop("widgets", None)
    nbformat.write(nb, path)
    return seconds


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
    rows = ["| notebook | quick profile, 2 CPU cores (measured) |", "|---|---|"]
    total = 0.0
    for name, seconds in sorted(data.items()):
        if name.startswith("_"):
            continue
        total += seconds
        rows.append(f"| `{name}` | {seconds / 60:.1f} min |")
    rows.append(f"| **whole course** | **{total / 60:.1f} min** |")
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    readme.write_text(head + start + "\n" + "\n".join(rows) + "\n" + end + tail)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("--timeout", type=int, default=600, help="seconds per cell")
    parser.add_argument("--budget", action="store_true", help="record wall times in the README")
    args = parser.parse_args()
    os.environ.setdefault("COURSE_PROFILE", "quick")
    os.environ["COURSE_PROGRESS"] = "0"
    times, failed = {}, []
    for path in args.notebooks:
        print(f"executing {path} ...", flush=True)
        try:
            seconds = execute(path, args.timeout)
        except CellExecutionError as err:
            failed.append(path)
            print(f"FAILED {path}:\n{str(err)[-3000:]}", file=sys.stderr)
            continue
        times[path.name] = seconds
        print(f"  {path.name}: {seconds:.1f} s", flush=True)
    if args.budget and times:
        write_budget(times)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
