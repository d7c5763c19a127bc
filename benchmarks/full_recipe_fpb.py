"""Choosing the command line's full fine-tuning recipe without looking at the test half.

    python benchmarks/full_recipe_fpb.py                          # ~20 min on 2 cores
    python benchmarks/full_recipe_fpb.py --lrs 1e-4 2e-4 --epochs 4 6

The strategies benchmark (``strategies_fpb.py``) scores each strategy's default
recipe once on the test half of Financial PhraseBank all-agree. Those defaults
must not be picked by looking at that test half, so this script carves a
validation split out of the *training* half only (stratified 15%, seed 42), runs
``python -m course_lib classify --strategy full`` for a small grid of learning
rates and epoch counts (plus the layerwise default, for reference), and scores
every run on the validation split. The winner by validation macro-F1 is the
recipe ``strategies.RECOMMENDED_LR`` / ``RECOMMENDED_EPOCHS`` should hold.

Writes ``benchmarks/results/full_recipe_fpb.{json,md}`` after every run; finished
runs are reused from ``--work-dir`` unless ``--fresh``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from case_finance_fpb import run_cli  # noqa: E402
from strategies_fpb import allagree_folder, split_fpb  # noqa: E402

from course_lib import data, strategies  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "full_recipe_fpb"


def carve_validation(folder: Path) -> dict:
    """fit.csv + validation.csv from train.csv (stratified 15%, seed 42); test.csv untouched."""
    from sklearn.model_selection import train_test_split

    with open(folder / "train.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    fit, validation = train_test_split(rows, test_size=0.15, random_state=data.SPLIT_SEED,
                                       stratify=[r["label"] for r in rows])
    for name, part in (("fit", fit), ("validation", validation)):
        with open(folder / f"{name}.csv", "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=["sentence", "label"])
            writer.writeheader()
            writer.writerows(part)
    return {"fit": len(fit), "validation": len(validation)}


def run(folder: Path, strategy: str, lr: float | None, epochs: int | None,
        fresh: bool) -> dict:
    """One ``classify`` run on fit.csv, scored on validation.csv (reused unless fresh)."""
    cli = ["--train", str(folder / "fit.csv"), "--eval", str(folder / "validation.csv"),
           "--text-column", "sentence", "--label-column", "label", "--strategy", strategy]
    if lr:
        cli += ["--lr", f"{lr:g}"]
    if epochs:
        cli += ["--epochs", str(epochs)]
    out = folder / f"{strategy}-lr{lr or 'default'}-ep{epochs or 'default'}"
    return run_cli(cli, out, fresh, lambda line: print(line, flush=True))


def write_results(rows: list[dict], facts: dict) -> None:
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.with_suffix(".json").write_text(json.dumps({**facts, "runs": rows}, indent=2)
                                            + "\n")
    full = [r for r in rows if r["strategy"] == "full"]
    best = max(full, key=lambda r: (r["macro_f1"], r["accuracy"])) if full else None
    table = ["| strategy | lr | epochs | validation accuracy | validation macro-F1 | train s |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        mark = " **(best full)**" if r is best else ""
        table.append(f"| {r['strategy']}{mark} | {r['lr']:g} | {r['epochs']:g} | "
                     f"{r['accuracy']:.4f} | {r['macro_f1']:.4f} | {r['train_seconds']:.0f} |")
    current = (strategies.RECOMMENDED_LR["full"], strategies.RECOMMENDED_EPOCHS["full"])
    text = ["# Choosing the full fine-tuning recipe on a validation split (FPB all-agree)", "",
            f"The training half of the strategies benchmark's split ({facts['train']} "
            f"sentences) cut into {facts['fit']} for fitting and {facts['validation']} for "
            "validation (stratified, seed 42); the test half is never read. Each row is one "
            "`python -m course_lib classify` run with seed 42, scored on the validation "
            f"sentences. Backbone MiniLM-L6-H384; machine: {facts['machine']}.", "", *table, ""]
    if best:
        text.append(f"Best full recipe by validation macro-F1: lr {best['lr']:g}, "
                    f"{best['epochs']:g} epochs. The command line's default is lr "
                    f"{current[0]:g}, {current[1]} epochs "
                    f"(`course_lib.strategies.RECOMMENDED_LR` / `RECOMMENDED_EPOCHS`).")
    text += ["", "With about 270 validation sentences one sentence is 0.4 accuracy points, "
             "so differences under about 1 point are noise.", "", "Made with:", "",
             "```bash", facts["command"], "```", ""]
    RESULTS.with_suffix(".md").write_text("\n".join(text))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lrs", nargs="+", type=float, default=[1e-4, 2e-4, 3e-4])
    parser.add_argument("--epochs", nargs="+", type=int, default=[4, 6])
    parser.add_argument("--no-layerwise", action="store_true",
                        help="skip the layerwise reference run")
    parser.add_argument("--data", type=Path, default=None,
                        help="folder with Sentences_AllAgree.txt")
    parser.add_argument("--work-dir", type=Path, default=Path("/tmp/course_bench/full_recipe"))
    parser.add_argument("--fresh", action="store_true")
    args = parser.parse_args()
    folder = allagree_folder(args.data)
    if folder is None:
        return 0
    args.work_dir.mkdir(parents=True, exist_ok=True)
    split = split_fpb(folder / data.FPB_FILES["allagree"], args.work_dir)
    (args.work_dir / "test.csv").unlink()  # the test half has no business here
    facts = {**split, **carve_validation(args.work_dir),
             "machine": f"{os.cpu_count()} CPU cores ({platform.machine()})",
             "date": time.strftime("%Y-%m-%d"),
             "command": "python benchmarks/full_recipe_fpb.py" + "".join(
                 f" {a}" for a in sys.argv[1:] if a != "--fresh")}
    print(f"fit {facts['fit']} / validation {facts['validation']} (test half not used)",
          flush=True)
    plan = [("full", lr, ep) for lr in args.lrs for ep in args.epochs]
    if not args.no_layerwise:
        plan.append(("layerwise", None, None))
    rows = []
    for strategy, lr, epochs in plan:
        print(f"{strategy} lr {lr or 'default'} epochs {epochs or 'default'}", flush=True)
        m = run(args.work_dir, strategy, lr, epochs, args.fresh)
        rows.append({"strategy": strategy, "lr": m["lr"], "epochs": m["epochs"],
                     "accuracy": m["accuracy"], "macro_f1": m["macro_f1"],
                     "train_seconds": m["train_seconds"]})
        write_results(rows, facts)
    print(f"wrote {RESULTS.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
