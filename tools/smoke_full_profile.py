"""Full-profile smoke run: every notebook on a bert-base-shaped stand-in and the real files.

    python tools/make_standin.py build/standin-bert-base
    python tools/smoke_full_profile.py --model build/standin-bert-base \\
        --data-dir ../shared/datasets notebooks/*.ipynb

Each notebook runs top to bottom on a fresh kernel with ``COURSE_PROFILE=full``,
``COURSE_MODEL`` = the stand-in (12 layers, 768 wide, random weights: no download),
``COURSE_DATA_DIR`` = the real files, offline, and ``COURSE_MAX_STEPS`` (default 2: every
training run stops after 2 optimizer steps and every loaded split keeps its first 64
examples). Nothing is written back to the notebooks.

What it proves: every code path of the full profile runs with a 12-layer, 768-wide model and
the real datasets' formats and lengths. What it cannot prove: that anything learns (the
weights are random). So each ``assert`` becomes a soft check, recorded and reported but
not raised; any other error fails the notebook.

What it measures, per notebook, from the Trainer's own records (``settings.record_cost``):
training runs, optimizer steps, seconds per step, padded positions per step (what the
compute pays for), peak resident memory of the kernel, and from these the estimate of the
full profile's training time on a GPU, with the arithmetic. Results go to
``benchmarks/full_profile_smoke.{json,md}``, beside the notebooks' other records
(``benchmarks/results`` holds only the tables of ``benchmarks/run_all.py``); ``--readme``
also writes the table into the README (between the ``full-profile-costs`` markers).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "full_profile_smoke"

# The GPU rate the estimates assume: sustained bf16 training throughput of one A100-class
# GPU (312 TFLOP/s peak; about a third of it is what BERT fine-tuning sustains). An
# estimate, labelled as one; replaced by measurements when a GPU run is available.
GPU_FLOPS = 100e12
GPU_NAME = "one A100-class GPU at 100 TFLOP/s sustained (bf16)"
# Small fine-tuning batches do not keep a GPU busy: each optimizer step of a 12-layer model
# also pays kernel launches and the optimizer update, about 50 ms whatever its size.
GPU_STEP_OVERHEAD = 0.05

SOFT_ASSERTS = r'''
import ast as _ast
import json as _json
__smoke_failures__ = []


class _SoftAsserts(_ast.NodeTransformer):
    """``assert test, msg`` -> ``if not test: __smoke_failures__.append("test")``."""

    def visit_Assert(self, node):
        text = _ast.unparse(node.test)[:160]
        record = _ast.Expr(_ast.Call(
            _ast.Attribute(_ast.Name("__smoke_failures__", _ast.Load()), "append", _ast.Load()),
            [_ast.Constant(text)], []))
        return _ast.copy_location(_ast.If(_ast.UnaryOp(_ast.Not(), node.test), [record], []),
                                  node)

    def visit_Module(self, node):
        self.generic_visit(node)
        return _ast.fix_missing_locations(node)


get_ipython().ast_transformers.append(_SoftAsserts())
'''

REPORT = r'''
import resource as _resource
print("SMOKE-REPORT " + _json.dumps({
    "soft_failures": __smoke_failures__,
    "peak_rss_mb": _resource.getrusage(_resource.RUSAGE_SELF).ru_maxrss / 1024}))
'''


def run_notebook(path: Path, timeout: int) -> dict:
    """Execute ``path`` with soft asserts; returns seconds, soft failures and peak memory."""
    nb = nbformat.read(path, as_version=4)
    nb.cells.insert(0, nbformat.v4.new_code_cell(SOFT_ASSERTS))
    nb.cells.append(nbformat.v4.new_code_cell(REPORT))
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    started = time.perf_counter()
    client.execute()
    seconds = time.perf_counter() - started
    text = "".join(o.get("text", "") for o in nb.cells[-1].outputs)
    report = json.loads(text.split("SMOKE-REPORT ", 1)[1])
    return {"seconds": round(seconds, 1), **report}


def summarise(records: list[dict]) -> dict:
    """One notebook's cost records -> its row of the table (with the GPU estimate)."""
    runs = [r for r in records if r["kind"] == "training"]
    datasets = [r for r in records if r["kind"] == "dataset"]
    steps = sum(r["steps"] for r in runs)
    seconds = sum(r["train_seconds"] for r in runs)
    positions = sum(r["positions"] for r in runs)
    # A smoke run trains on the first few examples of each split; the full run on all of
    # them. Scale each run's configured steps by its notebook's largest train-split ratio.
    ratio = max((d["full_sizes"]["train"] / max(1, d["kept"]["train"]) for d in datasets),
                default=1.0)
    full_steps = sum(r["configured_steps"] for r in runs) * ratio
    # forward and backward of every weight (6 FLOPs per weight and position): an upper
    # bound for runs that freeze layers, and far above it where frozen layers were cached
    flops_per_step = [6 * r["parameters"] * r["positions"] / max(1, r["steps"]) for r in runs]
    full_flops = sum(f * r["configured_steps"] * ratio for f, r in zip(flops_per_step, runs))
    return {
        "training runs": len(runs), "steps": steps,
        "seconds per step": round(seconds / steps, 2) if steps else None,
        "positions per step": round(positions / steps) if steps else None,
        "tokens": sum(r["tokens"] for r in runs),
        "largest model parameters": max((r["parameters"] for r in runs), default=0),
        "train split ratio": round(ratio, 1),
        "full-run steps (estimate)": round(full_steps),
        "full-run training TFLOP (estimate)": round(full_flops / 1e12, 1),
        "GPU minutes (estimate)": gpu_minutes(full_flops / 1e12, full_steps),
        "datasets": {d["dataset"]: d["full_sizes"] for d in datasets},
    }


def gpu_minutes(tflop: float, steps: float) -> float:
    """Training minutes on the assumed GPU: compute at ``GPU_FLOPS`` plus a fixed cost per step."""
    return round((tflop * 1e12 / GPU_FLOPS + steps * GPU_STEP_OVERHEAD) / 60, 1)


def markdown(results: dict) -> str:
    lines = [
        "| notebook | smoke run, 2 CPU cores | training runs | s per step (CPU, measured) "
        "| positions per step | peak memory | soft-failed asserts | full run on a GPU (estimate) |",
        "|---|---|---|---|---|---|---|---|"]
    for name, row in results["notebooks"].items():
        if "error" in row:
            lines.append(f"| `{name}` | did not complete: {row['error']} | | | | | | |")
            continue
        cost = row["cost"]
        per_step = "-" if cost["seconds per step"] is None else f"{cost['seconds per step']:.1f}"
        positions = "-" if cost["positions per step"] is None else f"{cost['positions per step']:,}"
        minutes = gpu_minutes(cost["full-run training TFLOP (estimate)"],
                              cost["full-run steps (estimate)"])
        gpu = ("-" if not cost["training runs"] else
               f"{minutes:.1f} min ({cost['full-run steps (estimate)']:,} steps, "
               f"{cost['full-run training TFLOP (estimate)']:,.0f} TFLOP)")
        lines.append(
            f"| `{name}` | {row['seconds'] / 60:.1f} min | {cost['training runs']} | {per_step} "
            f"| {positions} | {row['peak_rss_mb'] / 1024:.1f} GB | {len(row['soft_failures'])} "
            f"| {gpu} |")
    from course_lib.settings import SMOKE_QUESTIONS_PER_STEP

    lines += [
        "",
        f"Measured with `{results['command']}` on {results['machine']}: every training run "
        f"stopped after {results['max_steps']} optimizer steps and every split kept its first "
        f"{results['examples_per_split']} examples (a QA split its first "
        f"{SMOKE_QUESTIONS_PER_STEP * results['max_steps']} questions: each is tens of "
        "windows of a long article). Seconds per step include the Trainer's "
        "evaluations during training. Soft-failed asserts are the lessons' checks, which a "
        "random-weight model fails by design (listed in the JSON file).",
        "",
        f"The GPU column is an estimate, not a measurement: training FLOPs ≈ 6 × parameters "
        f"× padded positions per step × steps, with the full run's "
        f"steps = the configured steps × (full train split / the part kept); minutes = TFLOP / ({GPU_NAME}) + steps × "
        f"{GPU_STEP_OVERHEAD * 1000:.0f} ms of fixed cost per step. It leaves out evaluation, "
        "feature caching and loading, which the smoke run's CPU minutes show can dominate on "
        "long documents, and it overstates runs that freeze layers (no backward pass there) "
        "and most of all runs on cached features (07's probes, 09's trials), whose frozen "
        "layers do not run at all. Replace it "
        "with a measurement when a GPU is available.",
    ]
    return "\n".join(lines) + "\n"


def write_readme(table: str) -> None:
    readme = ROOT / "README.md"
    text = readme.read_text()
    start, end = "<!-- full-profile-costs:start -->", "<!-- full-profile-costs:end -->"
    if start not in text:
        return
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    readme.write_text(head + start + "\n" + table + end + tail)
    from guide_table import update_guide

    update_guide()  # the instructor guide's full-profile column reads the same records


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path)
    parser.add_argument("--model", type=Path, help="the stand-in's folder")
    parser.add_argument("--data-dir", type=Path, help="the real datasets")
    parser.add_argument("--max-steps", type=int, default=2)
    parser.add_argument("--timeout", type=int, default=1200, help="seconds per cell")
    parser.add_argument("--readme", action="store_true", help="write the table into the README")
    parser.add_argument("--render", action="store_true",
                        help="only rewrite the .md (and README) from the existing .json")
    parser.add_argument("--results", type=Path, default=RESULTS,
                        help="where the .json and .md go (without the suffix)")
    args = parser.parse_args()
    if args.render:
        table = markdown(json.loads(args.results.with_suffix(".json").read_text()))
        args.results.with_suffix(".md").write_text("# Full-profile smoke run\n\n" + table)
        if args.readme:
            write_readme(table)
        return 0
    if not args.notebooks:
        parser.error("name the notebooks to run (or --render)")
    for folder, what in ((args.model, "--model"), (args.data_dir, "--data-dir")):
        if folder is None or not folder.is_dir():
            parser.error(f"{what} {folder} is not a folder")
    os.environ.update(COURSE_PROFILE="full", COURSE_MODEL=str(args.model.resolve()),
                      COURSE_DATA_DIR=str(args.data_dir.resolve()), HF_HUB_OFFLINE="1",
                      COURSE_MAX_STEPS=str(args.max_steps), COURSE_PROGRESS="0")
    from course_lib import settings

    results = {"command": "python tools/smoke_full_profile.py --model STANDIN --data-dir "
                          "../shared/datasets " + " ".join(f"notebooks/{p.name}"
                                                           for p in args.notebooks),
               "machine": f"{os.cpu_count()} CPU cores, {platform.machine()}",
               "max_steps": args.max_steps, "examples_per_split": settings.max_examples_cap(),
               "notebooks": {}}
    failed = []
    with tempfile.TemporaryDirectory() as scratch:
        costs = Path(scratch) / "costs.jsonl"
        os.environ["COURSE_COSTS"] = str(costs)
        for path in args.notebooks:
            print(f"smoke run: {path} ...", flush=True)
            os.environ["COURSE_NOTEBOOK"] = path.name
            try:
                row = run_notebook(path, args.timeout)
            except CellExecutionError as err:
                failed.append(path.name)
                message = re.sub(r"\x1b\[[0-9;]*m", "", str(err)).strip().splitlines()
                row = {"error": next((line for line in reversed(message) if line.strip()), "?")}
                print(f"FAILED {path}:\n{str(err)[-3000:]}", file=sys.stderr)
            records = [json.loads(line) for line in costs.read_text().splitlines()] \
                if costs.is_file() else []
            row["cost"] = summarise([r for r in records if r["notebook"] == path.name])
            results["notebooks"][path.name] = row
            if "error" not in row:
                print(f"  {row['seconds']:.0f} s, {row['cost']['training runs']} training runs, "
                      f"{len(row['soft_failures'])} soft-failed asserts", flush=True)
    args.results.parent.mkdir(parents=True, exist_ok=True)
    earlier = args.results.with_suffix(".json")
    if earlier.is_file():  # a rerun of some notebooks keeps the others' rows
        rows = json.loads(earlier.read_text())["notebooks"]
        rows.update(results["notebooks"])
        results["notebooks"] = dict(sorted(rows.items()))
        results["command"] = results["command"].split(" notebooks/")[0] + " notebooks/*.ipynb"
    earlier.write_text(json.dumps(results, indent=1) + "\n")
    table = markdown(results)
    args.results.with_suffix(".md").write_text("# Full-profile smoke run\n\n" + table)
    if args.readme:
        write_readme(table)
    if failed:
        print("failed: " + ", ".join(failed), file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
