"""Financial PhraseBank, all-agree and 50%-agree, through the course's command line.

    python benchmarks/case_finance_fpb.py                        # full + layerwise, both sets
    python benchmarks/case_finance_fpb.py --strategies full --agreements allagree

Each agreement level is split by ``course_lib.data.load_dataset`` (70/10/20,
stratified, seed 42, duplicates removed); FinBERT's test split was also 20%.
Every run is ``python -m course_lib classify`` on the training split with the
command line's recipe for the strategy (quick backbone unless ``--model``), scored
on that set's test split (final weights, no selection on the test set).

Each model is also scored on the *other* set's test split, restricted to the
sentences it never saw in training: the 50% file contains every all-agree
sentence, so without that filter the cross scores would be inflated by leakage.

Skips (exit 0) when ``../shared/datasets`` (or ``--data-dir``) has no FPB files.
Writes ``benchmarks/results/case_finance_fpb.{json,md}`` after every run, so an
interrupted benchmark keeps what it measured; finished runs are reused from
``--work-dir`` (their ``metrics.json``) unless ``--fresh``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
sys.path.insert(0, str(ROOT))

PUBLISHED = [  # Araci (2019), FinBERT, Table 2/3: 20% test split of each set
    {"system": "FinBERT (Araci 2019, bert-base + financial pretraining)", "test_set": "allagree",
     "accuracy": 0.97, "macro_f1": 0.95},
    {"system": "FinBERT (Araci 2019, bert-base + financial pretraining)", "test_set": "50",
     "accuracy": 0.86, "macro_f1": 0.84},
]
SET_NAMES = {"allagree": "all-agree", "50": "50%-agree", "66": "66%-agree", "75": "75%-agree"}


# ------------------------------------------------------------------ helpers
def write_csv(path: Path, rows: list[dict], columns: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows({c: r[c] for c in columns} for r in rows)
    return path


def split_rows(split, names: list[str], columns: list[str]) -> list[dict]:
    """Rows with the label as its name (the command line accepts string labels)."""
    table = {c: list(split[c]) for c in columns}
    labels = list(split["label"])
    return [{**{c: table[c][i] for c in columns}, "label": names[labels[i]]}
            for i in range(len(labels))]


def run_cli(args: list[str], output_dir: Path, fresh: bool, log) -> dict:
    """``python -m course_lib classify ...``; reuses a finished run's metrics.json."""
    metrics_path = output_dir / "metrics.json"
    if metrics_path.is_file() and not fresh:
        log(f"  reusing {metrics_path}")
        return json.loads(metrics_path.read_text())
    command = [sys.executable, "-m", "course_lib", "classify", *args,
               "--output-dir", str(output_dir)]
    log("  $ " + " ".join(command[1:]))
    env = {**os.environ, "COURSE_PROGRESS": "0", "COURSE_PROFILE":
           os.environ.get("COURSE_PROFILE", "quick")}
    started = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"command failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    metrics = json.loads(metrics_path.read_text())
    metrics["wall_seconds"] = round(wall, 1)
    metrics_path.write_text(json.dumps(metrics, indent=2) + "\n")
    log(f"  accuracy {metrics['accuracy']:.4f}  macro-F1 {metrics['macro_f1']:.4f}  "
        f"train {metrics['train_seconds']:.0f} s (wall {wall:.0f} s)")
    return metrics


def score_saved_model(model_dir: Path, texts: list[str], labels: list[str],
                      pairs: list[str] | None = None, max_length: int = 128) -> dict:
    """Accuracy and macro-F1 of a saved ``model/`` folder on extra texts."""
    import numpy as np
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from transformers.utils import logging as transformers_logging

    from course_lib import metrics

    transformers_logging.disable_progress_bar()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir, use_safetensors=True)
    model.eval()
    names = [model.config.id2label[i] for i in range(model.config.num_labels)]
    predictions = []
    with torch.inference_mode():
        for start in range(0, len(texts), 64):
            batch = texts[start:start + 64]
            second = pairs[start:start + 64] if pairs else None
            enc = tokenizer(batch, second, truncation=True, max_length=max_length,
                            padding=True, return_tensors="pt")
            predictions.append(model(**enc).logits.argmax(-1).numpy())
    ids = np.array([names.index(label) for label in labels])
    return metrics.classification_scores(ids, np.concatenate(predictions), names)


def machine() -> str:
    return f"{os.cpu_count()} CPU cores ({platform.machine()}), torch threads " \
           f"{os.environ.get('OMP_NUM_THREADS', 'default')}"


# --------------------------------------------------------------- benchmark
def load_sets(root: Path, agreements: list[str]) -> dict:
    from course_lib import data

    return {a: data.load_dataset("finance", source="files", data_dir=root, agreement=a,
                                 verbose=False) for a in agreements}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="folder with financial_phrasebank/ (default: ../shared/datasets)")
    parser.add_argument("--agreements", default="allagree,50")
    parser.add_argument("--strategies", default="full,layerwise")
    parser.add_argument("--model", default=None, help="backbone (default: the quick one)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--work-dir", type=Path, default=Path("/tmp/course_bench/finance"))
    parser.add_argument("--fresh", action="store_true", help="retrain finished runs")
    args = parser.parse_args()

    from course_lib import data, settings

    root = args.data_dir or settings.shared_datasets_dir()
    if root is None or not (Path(root) / "financial_phrasebank").is_dir():
        print("skipped: no Financial PhraseBank files (../shared/datasets/financial_phrasebank "
              "or --data-dir)")
        return 0
    agreements = args.agreements.split(",")
    strategies = args.strategies.split(",")
    sets = load_sets(Path(root), agreements)
    names = data.FINANCE_LABELS

    def log(line: str) -> None:
        print(line, flush=True)

    files = {}
    for agreement, dsd in sets.items():
        folder = args.work_dir / agreement
        files[agreement] = {
            split: write_csv(folder / f"{split}.csv", split_rows(dsd[split], names, ["text"]),
                             ["text", "label"]) for split in ("train", "test")}
        log(f"{SET_NAMES[agreement]}: " + ", ".join(f"{s} {len(dsd[s])}" for s in dsd))

    rows = []
    for strategy in strategies:
        for agreement in agreements:
            log(f"{strategy} on {SET_NAMES[agreement]}")
            out = args.work_dir / agreement / f"{strategy}-seed{args.seed}"
            cli = ["--train", str(files[agreement]["train"]), "--eval",
                   str(files[agreement]["test"]), "--text-column", "text", "--label-column",
                   "label", "--strategy", strategy, "--seed", str(args.seed)]
            if args.model:
                cli += ["--model", args.model]
            m = run_cli(cli, out, args.fresh, log)
            base = {"train_set": agreement, "strategy": strategy, "seed": args.seed,
                    "train_examples": m["train_examples"], "epochs": m["epochs"], "lr": m["lr"],
                    "train_seconds": m["train_seconds"], "model": m["model"]}
            rows.append({**base, "test_set": agreement, "test_examples": m["eval_examples"],
                         "accuracy": m["accuracy"], "macro_f1": m["macro_f1"]})
            seen = {data.text_key(t) for t in sets[agreement]["train"]["text"]}
            for other in agreements:
                if other == agreement:
                    continue
                test = split_rows(sets[other]["test"], names, ["text"])
                keep = [r for r in test if data.text_key(r["text"]) not in seen]
                scores = score_saved_model(out / "model", [r["text"] for r in keep],
                                           [r["label"] for r in keep])
                log(f"  on the unseen part of the {SET_NAMES[other]} test split ({len(keep)} of "
                    f"{len(test)}): accuracy {scores['accuracy']:.4f}  "
                    f"macro-F1 {scores['macro_f1']:.4f}")
                rows.append({**base, "test_set": f"{other} (unseen part)",
                             "test_examples": len(keep), "accuracy": scores["accuracy"],
                             "macro_f1": scores["macro_f1"]})
            write_results(rows, sets)
    log(f"wrote {RESULTS / 'case_finance_fpb.md'}")
    return 0


def write_results(rows: list[dict], sets: dict) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    sizes = {a: {s: len(d[s]) for s in d} for a, d in sets.items()}
    payload = {"benchmark": "case_finance_fpb", "machine": machine(), "splits": sizes,
               "published": PUBLISHED, "runs": rows}
    (RESULTS / "case_finance_fpb.json").write_text(json.dumps(payload, indent=2) + "\n")
    lines = ["# Financial PhraseBank: the course's figures next to FinBERT's", "",
             "`python benchmarks/case_finance_fpb.py` — `python -m course_lib classify` with the "
             "command line's recipe per strategy (quick backbone MiniLM-L6-H384 unless stated; "
             "batch 32, max length 128, final weights). Splits from `course_lib.data` "
             "(70/10/20, stratified, seed 42): " +
             "; ".join(f"{SET_NAMES[a]} train {s['train']} / test {s['test']}"
                       for a, s in sizes.items()) + ".", "",
             "| trained on | strategy | tested on | n | accuracy | macro-F1 | epochs | lr | "
             "train s |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        tested = r["test_set"].split(" ")[0]
        label = SET_NAMES[tested] + (" (unseen part)" if "unseen" in r["test_set"] else "")
        lines.append(f"| {SET_NAMES[r['train_set']]} | {r['strategy']} | {label} | "
                     f"{r['test_examples']} | {r['accuracy']:.3f} | {r['macro_f1']:.3f} | "
                     f"{r['epochs']:g} | {r['lr']:g} | {r['train_seconds']:.0f} |")
    lines += ["", "Published (Araci 2019, FinBERT: bert-base further pretrained on financial "
              "text, 20% test split of each set):", "", "| system | test set | accuracy | "
              "macro-F1 |", "|---|---|---|---|"]
    lines += [f"| {p['system']} | {SET_NAMES[p['test_set']]} | {p['accuracy']:.2f} | "
              f"{p['macro_f1']:.2f} |" for p in PUBLISHED]
    lines += ["", f"Machine: {machine()}; train seconds are wall-clock time for training "
              "alone; other work on the machine inflates them, so compare them only within one "
              "table.",
              "\"Unseen part\": the other set's test split minus every sentence this model "
              "trained on (the 50% file contains all all-agree sentences)."]
    (RESULTS / "case_finance_fpb.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    raise SystemExit(main())
