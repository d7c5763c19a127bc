"""Task- and domain-adaptive pretraining, then fine-tuning, through the command line.

    python benchmarks/pretraining.py                         # everything (hours on 2 cores)
    python benchmarks/pretraining.py --pretrain-only --limit 800 --epochs 1   # time one step
    python benchmarks/pretraining.py --parts finance         # Financial PhraseBank only
    python benchmarks/pretraining.py --candidates 3@1e-4     # one recipe, no choice (~1.5 h)

**Task-adaptive** (Financial PhraseBank): every sentence of the 50%-agree file except
the validation and test splits' (the 50% file holds every all-agree sentence, so both sets'
splits are left out; validation too, so the recipe is chosen on sentences its pretraining
never saw, as the test sentences are), without labels, goes to ``python -m course_lib
pretrain``; then
``python -m course_lib classify --model DIR/model`` with the command line's default
recipe, on all-agree and on 50%-agree. Splits: ``course_lib.data.load_dataset`` (70/10/20,
stratified, seed 42, duplicates removed), the ones ``benchmarks/case_finance_fpb.py`` uses;
FinBERT's test split was also 20%.

**The recipe is chosen on the validation splits only**: each candidate pretraining
(``--candidates``, epochs x learning rate) and the original backbone are fine-tuned on the
training split (seed 42) and scored on the validation split; the best mean validation
accuracy over the two sets wins. Then the winner and the original backbone are fine-tuned
with 3 seeds and scored once on the test split (mean and sd). With a single candidate
(``--candidates 3@1e-4``, notebook 06's recipe: about an hour less on 2 cores) there is
nothing to choose and the validation runs are skipped; the results say which was run.

**Domain-adaptive** (Medical Abstracts, the half in ``../shared/datasets``): the training
split's abstracts, without labels, goes to ``pretrain`` with the chosen recipe; then
``classify`` (3 seeds) from it and from the original backbone on the 5-class task.

Skips (exit 0) when ``../shared/datasets`` (or ``--data-dir``) lacks the files. Writes
``benchmarks/results/pretraining.{json,md}`` after every run; finished runs in
``--work-dir`` are reused (their ``metrics.json``) unless ``--fresh``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
sys.path.insert(0, str(ROOT))

TARGETS = {"allagree": {"accuracy": 0.97, "macro_f1": 0.95},  # FinBERT (Araci 2019)
           "50": {"accuracy": 0.86, "macro_f1": 0.84}}
FINBERT_ABLATION = ("FinBERT's own ablation (Araci 2019, Table 4; bert-base on Financial "
                    "PhraseBank, accuracy / macro-F1): vanilla BERT 0.85 / 0.84; further "
                    "pretrained on the task's sentences 0.86 / 0.85; on financial news (Reuters "
                    "TRC2) 0.86 / 0.84: about one point.")
SET_NAMES = {"allagree": "all-agree", "50": "50%-agree", "medical": "Medical Abstracts"}
SEEDS = (42, 43, 44)


# ------------------------------------------------------------------ helpers
def log(line: str) -> None:
    print(line, flush=True)


def write_csv(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["text", "label"])
        writer.writeheader()
        writer.writerows(rows)
    return path


def write_texts(path: Path, texts: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(" ".join(t.split()) for t in texts) + "\n", encoding="utf-8")
    return path


def split_rows(split, names: list[str]) -> list[dict]:
    return [{"text": t, "label": names[y]} for t, y in zip(split["text"], split["label"])]


def course(command: str, args: list[str], output_dir: Path, fresh: bool) -> dict:
    """``python -m course_lib COMMAND ...``; a finished run's metrics.json is reused."""
    metrics_path = output_dir / "metrics.json"
    if metrics_path.is_file() and not fresh:
        log(f"  reusing {metrics_path}")
        return json.loads(metrics_path.read_text())
    argv = [sys.executable, "-m", "course_lib", command, *args, "--output-dir", str(output_dir)]
    if (output_dir / "checkpoints").is_dir():
        argv.append("--resume")  # an interrupted earlier run continues where it stopped
    log("  $ " + " ".join(argv[1:]))
    env = {**os.environ, "COURSE_PROGRESS": "0",
           "COURSE_PROFILE": os.environ.get("COURSE_PROFILE", "quick")}
    started = time.perf_counter()
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"command failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    metrics = json.loads(metrics_path.read_text())
    metrics["wall_seconds"] = round(time.perf_counter() - started, 1)
    metrics_path.write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics


def pretrain(texts: Path, out: Path, epochs: float, lr: float, fresh: bool,
             model: str | None) -> dict:
    extra = ["--model", model] if model else []
    m = course("pretrain", ["--train", str(texts), "--epochs", f"{epochs:g}", "--lr", f"{lr:g}",
                            *extra], out, fresh)
    log(f"  perplexity {m['perplexity_before']:.1f} -> {m['perplexity_after']:.1f}, masked "
        f"accuracy {m['masked_accuracy_before']:.3f} -> {m['masked_accuracy_after']:.3f}, "
        f"{m['train_texts']} texts, train {m['train_seconds']:.0f} s")
    return m


def classify(files: dict, split: str, backbone: str | None, out: Path, seed: int,
             fresh: bool) -> dict:
    args = ["--train", str(files["train"]), "--eval", str(files[split]), "--text-column", "text",
            "--label-column", "label", "--seed", str(seed)]
    m = course("classify", args + (["--model", backbone] if backbone else []), out, fresh)
    log(f"  accuracy {m['accuracy']:.4f}  macro-F1 {m['macro_f1']:.4f}  "
        f"train {m['train_seconds']:.0f} s")
    return m


def summary(runs: list[dict]) -> dict:
    def stat(key):
        values = [r[key] for r in runs]
        return (statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0)

    (acc, acc_sd), (f1, f1_sd) = stat("accuracy"), stat("macro_f1")
    return {"accuracy": acc, "accuracy_sd": acc_sd, "macro_f1": f1, "macro_f1_sd": f1_sd,
            "seeds": [r["seed"] for r in runs],
            "train_seconds": statistics.mean(r["train_seconds"] for r in runs)}


def machine() -> str:
    return f"{os.cpu_count()} CPU cores ({platform.machine()}), torch threads " \
           f"{os.environ.get('OMP_NUM_THREADS', 'default')}"


# ------------------------------------------------------------------ data
def finance_files(root: Path, work: Path) -> tuple[dict, Path, dict]:
    """CSV splits of both sets and the task-adaptive corpus: the 50% file minus every
    validation and test sentence of both sets (all-agree's are in the 50% file too). Leaving
    the validation sentences out as well keeps the choice honest: a recipe is chosen on
    sentences its pretraining never saw, as it is then scored on test sentences."""
    from course_lib import data

    sets = {a: data.load_dataset("finance", source="files", data_dir=root, agreement=a,
                                 verbose=False) for a in ("allagree", "50")}
    files = {a: {s: write_csv(work / a / f"{s}.csv", split_rows(d[s], data.FINANCE_LABELS))
                 for s in ("train", "validation", "test")} for a, d in sets.items()}
    held_out = {data.text_key(t) for d in sets.values() for s in ("validation", "test")
                for t in d[s]["text"]}
    corpus = [t for s in ("train", "validation", "test") for t in sets["50"][s]["text"]
              if data.text_key(t) not in held_out]
    sizes = {a: {s: len(d[s]) for s in d} for a, d in sets.items()}
    sizes["tapt_corpus"] = len(corpus)
    return files, write_texts(work / "tapt_corpus.txt", corpus), sizes


def medical_files(root: Path, work: Path) -> tuple[dict, Path, dict]:
    from course_lib import data

    dsd = data.load_dataset("medical", source="files", data_dir=root, verbose=False)
    names = dsd["train"].features["label"].names
    files = {s: write_csv(work / "medical" / f"{s}.csv", split_rows(dsd[s], names))
             for s in ("train", "validation", "test")}
    held_out = {data.text_key(t) for s in ("validation", "test") for t in dsd[s]["text"]}
    corpus = [t for t in dsd["train"]["text"] if data.text_key(t) not in held_out]
    sizes = {s: len(dsd[s]) for s in dsd} | {"dapt_corpus": len(corpus)}
    return files, write_texts(work / "medical" / "dapt_corpus.txt", corpus), sizes


# ------------------------------------------------------------------ parts
def finance_part(args, root: Path, report: dict) -> tuple[float, float] | None:
    files, corpus, sizes = finance_files(root, args.work_dir)
    report["splits"]["finance"] = sizes
    log(f"task-adaptive corpus: {sizes['tapt_corpus']} sentences ({corpus})")
    candidates = [tuple(float(x) for x in c.split("@")) for c in args.candidates.split(",")]
    backbones = {"original": None}
    for epochs, lr in candidates:
        name = f"tapt-e{epochs:g}-lr{lr:g}"
        log(f"pretrain {name}")
        m = pretrain(corpus, args.work_dir / name, epochs, lr, args.fresh, args.model)
        report["pretraining"][name] = _pretrain_row(m, "finance (50% file minus validation and test splits)")
        backbones[name] = str(args.work_dir / name / "model")
        save(report)
    if args.pretrain_only:
        return None
    if len(candidates) == 1:  # nothing to choose between: no validation runs
        report["chosen"] = next(name for name in backbones if name != "original")
        report["chosen_how"] = "the only candidate given (--candidates)"
    for name, backbone in backbones.items() if len(candidates) > 1 else ():
        for agreement in ("allagree", "50"):
            log(f"validation: {name} on {SET_NAMES[agreement]}")
            m = classify(files[agreement], "validation", backbone or args.model,
                         args.work_dir / agreement / f"val-{name}", 42, args.fresh)
            report["validation"].append({"backbone": name, "set": agreement,
                                         "accuracy": m["accuracy"], "macro_f1": m["macro_f1"]})
            save(report)
    if len(candidates) > 1:  # choose on validation only
        scores = {name: statistics.mean(r["accuracy"] for r in report["validation"]
                                        if r["backbone"] == name) for name in backbones}
        report["chosen"] = max(scores, key=scores.get)
        report["chosen_how"] = (f"the best mean validation accuracy "
                                f"({scores[report['chosen']]:.4f})")
    chosen = report["chosen"]
    log(f"chosen: {chosen}: {report['chosen_how']}")
    for name in dict.fromkeys(["original", chosen]):
        for agreement in ("allagree", "50"):
            runs = []
            for seed in SEEDS:
                log(f"test: {name} on {SET_NAMES[agreement]}, seed {seed}")
                m = classify(files[agreement], "test", backbones[name] or args.model,
                             args.work_dir / agreement / f"test-{name}-seed{seed}", seed,
                             args.fresh)
                runs.append({"seed": seed, **{k: m[k] for k in (
                    "accuracy", "macro_f1", "train_seconds")}})
            report["test"].append({"backbone": name, "set": agreement, "runs": runs,
                                   **summary(runs)})
            save(report)
    return candidates[[f"tapt-e{e:g}-lr{lr:g}" for e, lr in candidates].index(chosen)] \
        if chosen != "original" else candidates[0]


def medical_part(args, root: Path, report: dict, recipe: tuple[float, float]) -> None:
    files, corpus, sizes = medical_files(root, args.work_dir)
    report["splits"]["medical"] = sizes
    epochs, lr = recipe
    name = f"dapt-e{epochs:g}-lr{lr:g}"
    log(f"domain-adaptive pretraining on {sizes['dapt_corpus']} abstracts: {name}")
    m = pretrain(corpus, args.work_dir / "medical" / name, epochs, lr, args.fresh, args.model)
    report["pretraining"][name] = _pretrain_row(m, "Medical Abstracts (training split)")
    save(report)
    for label, backbone in (("original", args.model),
                            (name, str(args.work_dir / "medical" / name / "model"))):
        runs = []
        for seed in SEEDS:
            log(f"test: {label} on Medical Abstracts, seed {seed}")
            m = classify(files, "test", backbone, args.work_dir / "medical" /
                         f"test-{label}-seed{seed}", seed, args.fresh)
            runs.append({"seed": seed, **{k: m[k] for k in (
                "accuracy", "macro_f1", "train_seconds")}})
        report["test"].append({"backbone": label, "set": "medical", "runs": runs,
                               **summary(runs)})
        save(report)


def _pretrain_row(m: dict, corpus: str) -> dict:
    keys = ("perplexity_before", "perplexity_after", "masked_accuracy_before",
            "masked_accuracy_after", "train_seconds", "train_texts", "eval_texts",
            "train_windows", "epochs", "lr", "steps")
    return {"corpus": corpus, **{k: m[k] for k in keys},
            "seconds_per_epoch": round(m["train_seconds"] / m["epochs"], 1)}


# ------------------------------------------------------------------ results
def save(report: dict) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "pretraining.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = ["# Task- and domain-adaptive pretraining, then fine-tuning", "",
             f"`{report['command']}`: `python -m course_lib pretrain` on unlabelled "
             "text, then `python -m course_lib classify --model DIR/model` (the command line's "
             "default recipe), against `classify` from the original backbone. Pretraining "
             f"recipe: {report.get('chosen', 'not chosen yet')} "
             f"({report.get('chosen_how', 'chosen on the validation splits')}); test figures "
             "are means of 3 seeds (sd).",
             "", "## Pretraining", "", "| run | corpus | texts | epochs | lr | perplexity before "
             "-> after | masked accuracy before -> after | s/epoch |", "|---|---|---|---|---|---|---|---|"]
    for name, p in report["pretraining"].items():
        lines.append(f"| {name} | {p['corpus']} | {p['train_texts']} | {p['epochs']:g} | "
                     f"{p['lr']:g} | {p['perplexity_before']:.1f} -> {p['perplexity_after']:.1f} "
                     f"| {p['masked_accuracy_before']:.3f} -> {p['masked_accuracy_after']:.3f} "
                     f"| {p['seconds_per_epoch']:.0f} |")
    if report["validation"]:
        lines += ["", "## Choice on the validation splits (seed 42)", "",
                  "| backbone | set | accuracy | macro-F1 |", "|---|---|---|---|"]
        lines += [f"| {r['backbone']} | {SET_NAMES[r['set']]} | {r['accuracy']:.3f} | "
                  f"{r['macro_f1']:.3f} |" for r in report["validation"]]
        if report.get("chosen"):
            lines += ["", f"Chosen: **{report['chosen']}**."]
    if report["test"]:
        lines += ["", "## Test splits (3 seeds: mean ± sd)", "",
                  "| set | backbone | accuracy | macro-F1 | target (FinBERT) | train s |",
                  "|---|---|---|---|---|---|"]
        for r in report["test"]:
            target = TARGETS.get(r["set"])
            goal = "" if target is None else (
                f"{target['accuracy']:.2f} / {target['macro_f1']:.2f} "
                + ("met" if r["accuracy"] >= target["accuracy"]
                   and r["macro_f1"] >= target["macro_f1"] else "not met"))
            lines.append(f"| {SET_NAMES[r['set']]} | {r['backbone']} | {r['accuracy']:.3f} ± "
                         f"{r['accuracy_sd']:.3f} | {r['macro_f1']:.3f} ± {r['macro_f1_sd']:.3f} "
                         f"| {goal} | {r['train_seconds']:.0f} |")
    lines += [""] if report["test"] else []
    for set_name in dict.fromkeys(r["set"] for r in report["test"]):
        rows = {r["backbone"]: r for r in report["test"] if r["set"] == set_name}
        base = rows.get("original")
        for name, r in rows.items():
            if name == "original" or base is None:
                continue
            gaps = {k: r[k] - base[k] for k in ("accuracy", "macro_f1")}
            noise = {k: 2 * max(r[f"{k}_sd"], base[f"{k}_sd"]) for k in gaps}
            beyond = [abs(gaps[k]) > noise[k] for k in gaps]
            if all(gaps[k] > noise[k] for k in gaps):
                verdict = "a gain beyond twice the seed spread"
            elif all(gaps[k] < -noise[k] for k in gaps):
                verdict = "a loss beyond twice the seed spread"
            elif not any(beyond):
                verdict = "within twice the seed spread on both: no measurable difference"
            else:
                verdict = "beyond twice the seed spread on one of the two only"
            lines.append(f"{SET_NAMES[set_name]}: {name} against the original backbone "
                         f"{gaps['accuracy']:+.3f} accuracy / {gaps['macro_f1']:+.3f} macro-F1: "
                         f"{verdict}.")
    lines += ["", FINBERT_ABLATION, "",
              f"Machine: {report['machine']}. Seconds are wall-clock time for training alone; "
              "other work on the machine inflates them."]
    (RESULTS / "pretraining.md").write_text("\n".join(lines) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="folder with financial_phrasebank/ and medical_abstracts/ "
                             "(default: ../shared/datasets)")
    parser.add_argument("--parts", default="finance,medical")
    parser.add_argument("--candidates", default="3@1e-4,10@1e-4,3@5e-4",
                        help="pretraining recipes to choose from, EPOCHS@LR,... "
                             "(default: 3@1e-4,10@1e-4,3@5e-4)")
    parser.add_argument("--model", default=None, help="backbone (default: the quick one)")
    parser.add_argument("--work-dir", type=Path, default=Path("/tmp/course_bench/pretraining"))
    parser.add_argument("--fresh", action="store_true", help="rerun finished runs")
    parser.add_argument("--pretrain-only", action="store_true",
                        help="only the task-adaptive pretraining step (to time it)")
    parser.add_argument("--limit", type=int, default=None,
                        help="with --pretrain-only: use the first N corpus sentences")
    parser.add_argument("--epochs", type=float, default=None,
                        help="with --pretrain-only: epochs of the one pretraining run")
    args = parser.parse_args()

    from course_lib import settings

    root = Path(args.data_dir or settings.shared_datasets_dir() or "/nonexistent")
    parts = args.parts.split(",")
    needed = {"finance": "financial_phrasebank", "medical": "medical_abstracts"}
    if not all((root / needed[p]).is_dir() for p in parts):
        print(f"skipped: no {' / '.join(needed[p] for p in parts)} under {root} "
              "(../shared/datasets or --data-dir)")
        return 0
    command = " ".join(["python benchmarks/pretraining.py", *sys.argv[1:]])
    report = {"benchmark": "pretraining", "command": command, "machine": machine(), "splits": {},
              "pretraining": {},
              "validation": [], "test": [], "targets": TARGETS}
    if args.pretrain_only:
        files, corpus, sizes = finance_files(root, args.work_dir)
        texts = corpus.read_text(encoding="utf-8").splitlines()[:args.limit]
        small = write_texts(args.work_dir / f"tapt_corpus_{len(texts)}.txt", texts)
        epochs = args.epochs or float(args.candidates.split(",")[0].split("@")[0])
        lr = float(args.candidates.split(",")[0].split("@")[1])
        log(f"pretrain only: {len(texts)} of {sizes['tapt_corpus']} sentences, {epochs:g} "
            f"epochs, lr {lr:g}")
        m = pretrain(small, args.work_dir / f"probe-{len(texts)}-e{epochs:g}", epochs, lr,
                     args.fresh, args.model)
        log(json.dumps(_pretrain_row(m, f"FPB task corpus, first {len(texts)}"), indent=2))
        return 0
    recipe = (3.0, 1e-4)
    if "finance" in parts:
        recipe = finance_part(args, root, report) or recipe
    if "medical" in parts:
        medical_part(args, root, report, recipe)
    log(f"wrote {RESULTS / 'pretraining.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
