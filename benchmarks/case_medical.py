"""Medical Abstracts (5 conditions) through the command line, 5-fold stratified cross-validation.

    python benchmarks/case_medical.py --validate head,head+tail,chunks   # choose the recipe
    python benchmarks/case_medical.py                                    # 5 folds
    python benchmarks/case_medical.py --only-fold 0                      # one fold

Reads ``medical_abstracts/medical_tc_part_a.csv`` (half of the corpus's published
test file) the way ``course_lib.data`` does: abstracts filed under two conditions
are dropped (every copy: neither label is the annotators' single answer), repeats
kept once. The abstracts are split by ``StratifiedKFold`` (shuffled, seed 42);
each fold's training and test parts are written to CSV files and every run is
``python -m course_lib classify`` on them (final weights, the test fold read once).

``--validate`` chooses how long abstracts are read (``--long-text``) without
touching any test fold: fold K's training part (K = ``--only-fold``, default 0)
is split again, 80% to fit and 20% to validate, and each candidate is trained
and scored there. Imbalance (general pathology about three times digestive
diseases): ``--imbalance none`` (the default: classify's own) trains on the data as
it is; ``class-weights`` weights the loss by inverse class frequency through
classify's ``--class-weights balanced``; ``oversample`` repeats the rarer abstracts
of each training part instead. On the validation split (4 epochs, head+tail) none and
class-weights were within noise (macro-F1 0.629 against 0.624), and the class weights
cost the largest class, general pathological conditions, most of its F1 (it is a
catch-all that overlaps every other class, so down-weighting it pushes its abstracts
into the others): see the table.

Anchor: BioMedBERT + cross-attention + BiLSTM, macro-F1 63.8, trained on the
corpus's 11,550-abstract training file; each fold here trains on about 1,100.

Skips (exit 0) without ``../shared/datasets/medical_abstracts`` (or ``--data-dir``).
Writes ``benchmarks/results/case_medical.{json,md}`` after every run, keeping the
runs of earlier invocations (a run measured again replaces its old one); finished
runs are reused from ``--work-dir`` (their ``metrics.json``) unless ``--fresh``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from case_finance_fpb import RESULTS, machine, run_cli, write_csv  # noqa: E402

FILE = Path("medical_abstracts") / "medical_tc_part_a.csv"
SEED = 42
# Chosen on the validation split (the table's first section): see the module docstring.
DEFAULT_LONG_TEXT = "head+tail"
DEFAULT_MAX_LENGTH = 128
IMBALANCE = ("none", "class-weights", "oversample")
PUBLISHED = {"system": "BioMedBERT + cross-attention + BiLSTM (ETASR 2025)",
             "train_examples": 11550, "macro_f1": 0.638,
             "note": "trained on the full training file, tested on the full test file"}
COLUMNS = ["text", "label"]


# ------------------------------------------------------------------ data
def read_abstracts(path: Path) -> tuple[list[dict], dict]:
    """``[{"text", "label"}]`` (label = condition name) and what was read and dropped."""
    from course_lib import data

    records, report = data.parse_medical_csv(path)
    # the results files travel with the project: name the file, not this machine's folders
    return records, {"file": f"../shared/datasets/{FILE}", "read": report.read, "kept": len(records),
                     "duplicates": report.duplicates, "conflicting_labels": report.conflicts}


def fold_indices(labels: list[str], folds: int, seed: int = SEED) -> list[tuple[list, list]]:
    """``(train, test)`` row indices of each fold: stratified, shuffled with ``seed``."""
    import numpy as np
    from sklearn.model_selection import StratifiedKFold

    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    return [(train.tolist(), test.tolist())
            for train, test in splitter.split(np.zeros(len(labels)), labels)]


def validation_indices(labels: list[str], share: float = 0.2,
                       seed: int = SEED) -> tuple[list, list]:
    """A stratified ``(fit, validation)`` split of one fold's training part (positions in it)."""
    from sklearn.model_selection import train_test_split

    return tuple(sorted(part) for part in train_test_split(
        list(range(len(labels))), test_size=share, stratify=labels, random_state=seed))


def oversampled(rows: list[dict], seed: int = SEED) -> list[dict]:
    """Training rows with the rarer classes repeated up to the largest (``data.oversample``)."""
    import datasets

    from course_lib import data

    ids = {name: i for i, name in enumerate(dict.fromkeys(r["label"] for r in rows))}
    table = datasets.Dataset.from_dict({"row": list(range(len(rows))),
                                        "label": [ids[r["label"]] for r in rows]})
    return [rows[i] for i in data.oversample(table, seed=seed)["row"]]


def write_fold(records: list[dict], train: list[int], test: list[int], folder: Path,
               imbalance: str = "none") -> dict[str, Path]:
    """``train.csv`` and ``test.csv`` (columns text, label) of one fold, in ``folder``."""
    fit = [records[i] for i in train]
    if imbalance == "oversample":
        fit = oversampled(fit)
    return {"train": write_csv(folder / "train.csv", fit, COLUMNS),
            "test": write_csv(folder / "test.csv", [records[i] for i in test], COLUMNS)}


def token_lengths(texts: list[str], model: str | None) -> dict:
    """Abstract lengths in the backbone's tokens, and what 128/256/512-token windows lose."""
    from course_lib import backbones, longdocs

    tokenizer = backbones.load_tokenizer(model)
    return {str(size): {k: round(v, 3) if isinstance(v, float) else v
                        for k, v in longdocs.window_stats(tokenizer, texts, size).items()}
            for size in (128, 256, 512)}


# ------------------------------------------------------------------ runs
def recipe_of(args) -> dict:
    return {"strategy": args.strategy, "long_text": args.long_text,
            "max_length": args.max_length, "epochs": args.epochs,
            "imbalance": args.imbalance, "model": args.model, "seed": args.seed}


def recipe_name(recipe: dict) -> str:
    parts = [recipe["long_text"], f"len{recipe['max_length']}", recipe["imbalance"]]
    parts += [f"strategy-{recipe['strategy']}"] if recipe["strategy"] else []
    parts += [f"epochs-{recipe['epochs']:g}"] if recipe["epochs"] else []
    parts += [f"model-{Path(recipe['model']).name}"] if recipe["model"] else []
    return "_".join(p.replace("+", "-") for p in parts) + f"_seed{recipe['seed']}"


def classify_options(recipe: dict, files: dict[str, Path]) -> list[str]:
    cli = ["--train", str(files["train"]), "--eval", str(files["test"]),
           "--text-column", "text", "--label-column", "label",
           "--long-text", recipe["long_text"], "--max-length", str(recipe["max_length"]),
           "--seed", str(recipe["seed"])]
    if recipe["imbalance"] == "class-weights":
        cli += ["--class-weights", "balanced"]
    for option in ("strategy", "epochs", "model"):
        if recipe[option] is not None:
            cli += [f"--{option}", f"{recipe[option]:g}" if option == "epochs"
                    else str(recipe[option])]
    return cli


def check_classify_supports(recipe: dict) -> None:
    """``--imbalance class-weights`` needs classify's ``--class-weights``; say so in one line."""
    if recipe["imbalance"] != "class-weights":
        return
    from course_lib.cli import classify
    from course_lib.cli.common import CourseArgumentParser

    parser = CourseArgumentParser()
    classify.add_arguments(parser)
    if "--class-weights" not in parser.format_help():
        raise SystemExit("this course_lib's classify has no --class-weights option: run with "
                         "--imbalance oversample or --imbalance none")


def run_row(recipe: dict, metrics: dict, names: list[str], **where) -> dict:
    return {**where, **recipe, "strategy": metrics["strategy"], "epochs": metrics["epochs"],
            "lr": metrics["lr"], "batch_size": metrics["batch_size"], "model": metrics["model"],
            "train_examples": metrics["train_examples"], "test_examples": metrics["eval_examples"],
            "accuracy": metrics["accuracy"], "macro_f1": metrics["macro_f1"],
            "per_class_f1": {n: metrics["report"][n]["f1-score"] for n in names},
            "train_seconds": metrics["train_seconds"],
            "wall_seconds": metrics.get("wall_seconds"),
            **({"weighted_loss": WEIGHTED_LOSS} if recipe["imbalance"] == "class-weights"
               else {})}


def same_run(a: dict, b: dict, keys: tuple[str, ...]) -> bool:
    return all(a.get(k) == b.get(k) for k in keys)


# classify --class-weights: the loss's form since 2026-12-02 (data.weighted_loss); rows
# measured before then lack the field and are flagged in the table
WEIGHTED_LOSS = "batch mean of weight x cross-entropy"
RECIPE_KEYS = ("long_text", "max_length", "imbalance", "strategy", "epochs", "model", "seed")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="folder with medical_abstracts/ (default: ../shared/datasets)")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--only-fold", type=int, default=None, help="run this fold only (0-based)")
    parser.add_argument("--validate", default=None, metavar="LIST",
                        help="comma-separated --long-text values to compare on a validation "
                             "split of fold --only-fold's training part (default fold 0)")
    parser.add_argument("--long-text", default=DEFAULT_LONG_TEXT,
                        choices=("head", "head+tail", "chunks"))
    parser.add_argument("--max-length", type=int, default=DEFAULT_MAX_LENGTH)
    parser.add_argument("--epochs", type=float, default=None,
                        help="default: the strategy's recipe in classify")
    parser.add_argument("--strategy", default=None, help="default: classify's (layerwise)")
    parser.add_argument("--imbalance", choices=IMBALANCE, default="none")
    parser.add_argument("--model", default=None, help="backbone (default: the quick one)")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--work-dir", type=Path, default=Path("/tmp/course_bench/medical"))
    parser.add_argument("--fresh", action="store_true", help="retrain finished runs")
    args = parser.parse_args(argv)

    from course_lib import settings

    root = args.data_dir or settings.shared_datasets_dir()
    if root is None or not (Path(root) / FILE).is_file():
        print(f"skipped: no Medical Abstracts file (../shared/datasets/{FILE} or --data-dir)")
        return 0
    if args.folds < 2 or not (args.only_fold is None or 0 <= args.only_fold < args.folds):
        parser.error("--folds must be at least 2 and --only-fold in 0..folds-1")
    from course_lib.data import MEDICAL_LABELS

    records, source = read_abstracts(Path(root) / FILE)
    labels = [r["label"] for r in records]
    names = [n for n in MEDICAL_LABELS if n in labels]
    payload = previous_results()
    payload.update(source=source, machine=machine(), published=PUBLISHED, labels=names,
                   counts={n: labels.count(n) for n in names},
                   token_lengths=token_lengths([r["text"] for r in records], args.model))
    splits = fold_indices(labels, args.folds, args.seed)
    recipe = recipe_of(args)

    def log(line: str) -> None:
        print(line, flush=True)

    if args.validate:
        k = args.only_fold or 0
        fit, held = validation_indices([labels[i] for i in splits[k][0]], seed=args.seed)
        part = [records[i] for i in splits[k][0]]
        for long_text in args.validate.split(","):
            candidate = {**recipe, "long_text": long_text}
            check_classify_supports(candidate)
            folder = args.work_dir / "validation" / f"fold{k}"
            files = write_fold(part, fit, held, folder, candidate["imbalance"])
            log(f"validation of fold {k}: {long_text} (fit {len(fit)}, validate {len(held)})")
            m = run_cli(classify_options(candidate, files), folder / recipe_name(candidate),
                        args.fresh, log)
            row = run_row(candidate, m, names, fold=k, folds=args.folds)
            payload["validation"] = [r for r in payload.get("validation", [])
                                     if not same_run(r, row, ("fold", *RECIPE_KEYS))] + [row]
            write_results(payload)
    else:
        check_classify_supports(recipe)
        started = time.perf_counter()
        for k in [args.only_fold] if args.only_fold is not None else range(args.folds):
            folder = args.work_dir / f"folds{args.folds}" / f"fold{k}"
            files = write_fold(records, *splits[k], folder, recipe["imbalance"])
            log(f"fold {k + 1} of {args.folds}: train {len(splits[k][0])}, "
                f"test {len(splits[k][1])}")
            m = run_cli(classify_options(recipe, files), folder / recipe_name(recipe),
                        args.fresh, log)
            row = run_row(recipe, m, names, fold=k, folds=args.folds)
            payload["folds"] = [r for r in payload.get("folds", [])
                                if not same_run(r, row, ("fold", "folds", *RECIPE_KEYS))] + [row]
            write_results(payload)
        log(f"wall time of this invocation: {time.perf_counter() - started:.0f} s")
    write_results(payload)
    log(f"wrote {RESULTS / 'case_medical.md'}")
    return 0


# ------------------------------------------------------------------ results
def previous_results() -> dict:
    path = RESULTS / "case_medical.json"
    return json.loads(path.read_text()) if path.is_file() else {"benchmark": "case_medical"}


def summaries(rows: list[dict]) -> list[dict]:
    """Mean and sd over the folds of each recipe (sd over at least two folds)."""
    import numpy as np

    out = []
    for key in dict.fromkeys(tuple(r[k] for k in ("folds", *RECIPE_KEYS)) for r in rows):
        mine = sorted((r for r in rows if tuple(r[k] for k in ("folds", *RECIPE_KEYS)) == key),
                      key=lambda r: r["fold"])
        f1 = np.array([r["macro_f1"] for r in mine])
        acc = np.array([r["accuracy"] for r in mine])
        walls = [r["wall_seconds"] or 0.0 for r in mine]
        out.append({**{k: mine[0][k] for k in ("folds", *RECIPE_KEYS, "lr", "batch_size")},
                    "folds_run": len(mine),
                    "train_examples_mean": float(np.mean([r["train_examples"] for r in mine])),
                    "macro_f1_mean": float(f1.mean()),
                    "macro_f1_sd": float(f1.std(ddof=1)) if len(mine) > 1 else None,
                    "accuracy_mean": float(acc.mean()),
                    "per_class_f1_mean": {n: float(np.mean([r["per_class_f1"][n] for r in mine]))
                                          for n in mine[0]["per_class_f1"]},
                    "train_seconds_total": round(sum(r["train_seconds"] for r in mine), 1),
                    "wall_seconds_total": round(sum(walls), 1)})
    return out


def _f1s(per_class: dict) -> str:
    return " / ".join(f"{v:.2f}" for v in per_class.values())


def _recipe(r: dict) -> str:
    return (f"{r['strategy']}, {r['long_text']}, len {r['max_length']}, {r['epochs']:g} ep, "
            f"{r['imbalance']}")


def write_results(payload: dict) -> None:
    """``case_medical.json`` (everything) and ``case_medical.md`` (the tables, rendered from it)."""
    payload["summary"] = summaries(payload.get("folds", []))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "case_medical.json").write_text(json.dumps(payload, indent=2) + "\n")
    (RESULTS / "case_medical.md").write_text("\n".join(render(payload)) + "\n")


def render(payload: dict) -> list[str]:
    src, names = payload["source"], payload["labels"]
    short = " / ".join(n.split()[0] for n in names)
    lengths = payload["token_lengths"]["512"]
    lines = ["# Medical Abstracts: 5-fold cross-validation next to the published anchor", "",
             "`python benchmarks/case_medical.py` — `python -m course_lib classify` (quick "
             f"backbone MiniLM-L6-H384 unless stated, final weights) on `{FILE.name}`: "
             f"{src['read']:,} abstracts read, {src['conflicting_labels']} dropped (filed under "
             f"two conditions), {src['kept']:,} kept ("
             + ", ".join(f"{n} {c}" for n, c in payload["counts"].items()) + "). "
             f"Abstracts: median {lengths['median_tokens']:.0f} tokens, max "
             f"{lengths['max_tokens']}; a 128-token window cuts "
             f"{payload['token_lengths']['128']['truncated_share']:.0%} of them, a 256-token "
             f"one {payload['token_lengths']['256']['truncated_share']:.0%}.", ""]
    if payload.get("validation"):
        rows = payload["validation"]
        best = max(rows, key=lambda r: (r["macro_f1"], r["accuracy"]))
        lines += [f"Recipe choice on a validation split of fold {rows[0]['fold'] + 1}'s training "
                  f"part ({rows[0]['train_examples']} fit / {rows[0]['test_examples']} "
                  "validate; no test fold read):", "",
                  "| recipe | accuracy | macro-F1 | F1 " + short + " | train s | wall s |",
                  "|---|---|---|---|---|---|"]
        lines += [f"| {_recipe(r)} | {r['accuracy']:.3f} | {r['macro_f1']:.3f} | "
                  f"{_f1s(r['per_class_f1'])} | {r['train_seconds']:.0f} | "
                  f"{r['wall_seconds'] or 0:.0f} |" for r in rows]
        if len({_recipe(r) for r in rows}) > 1:
            n = best["test_examples"]
            se = (best["accuracy"] * (1 - best["accuracy"]) / n) ** 0.5
            spread = best["macro_f1"] - min(r["macro_f1"] for r in rows)
            verdict = ("every candidate is within noise of it: the spread of macro-F1 "
                       f"({spread:.3f}) is under 2 standard errors of an accuracy on {n} "
                       f"abstracts ({2 * se:.3f}), so this split cannot rank them"
                       if spread < 2 * se else
                       f"the spread of macro-F1 ({spread:.3f}) exceeds 2 standard errors of an "
                       f"accuracy on {n} abstracts ({2 * se:.3f})")
            lines += ["", f"Best on validation: {_recipe(best)} (macro-F1 "
                      f"{best['macro_f1']:.3f}); {verdict}. The cross-validation below keeps "
                      f"classify's default reading, {DEFAULT_LONG_TEXT}."]
        lines += [""]
    if payload.get("folds"):
        lines += ["Cross-validation (stratified, shuffled, seed 42; each fold's test part read "
                  "once):", "",
                  "| recipe | fold | train | test | accuracy | macro-F1 | F1 " + short +
                  " | train s | wall s |", "|---|---|---|---|---|---|---|---|---|"]
        for r in sorted(payload["folds"], key=lambda r: (_recipe(r), r["fold"])):
            lines.append(f"| {_recipe(r)} | {r['fold'] + 1} of {r['folds']} | "
                         f"{r['train_examples']} | {r['test_examples']} | {r['accuracy']:.3f} | "
                         f"{r['macro_f1']:.3f} | {_f1s(r['per_class_f1'])} | "
                         f"{r['train_seconds']:.0f} | {r['wall_seconds'] or 0:.0f} |")
    lines += [""] if lines[-1] else []
    lines += ["| system | trained on | macro-F1 (mean ± sd over folds) | accuracy | "
              "F1 " + short + " | train s (all folds) | wall s (all folds) |",
              "|---|---|---|---|---|---|---|"]
    for s in payload.get("summary", []):
        sd = f" ± {s['macro_f1_sd']:.3f}" if s["macro_f1_sd"] is not None else ""
        done = "" if s["folds_run"] == s["folds"] else f" ({s['folds_run']} of {s['folds']} folds)"
        lines.append(f"| course: {_recipe(s)}{done} | {s['train_examples_mean']:,.0f} per fold | "
                     f"{s['macro_f1_mean']:.3f}{sd} | {s['accuracy_mean']:.3f} | "
                     f"{_f1s(s['per_class_f1_mean'])} | {s['train_seconds_total']:.0f} | "
                     f"{s['wall_seconds_total']:.0f} |")
    p = payload["published"]
    older = [r for r in payload.get("validation", []) + payload.get("folds", [])
             if r["imbalance"] == "class-weights" and r.get("weighted_loss") != WEIGHTED_LOSS]
    lines += [f"| {p['system']} | {p['train_examples']:,} | {p['macro_f1']:.3f} | | | | |", "",
              *([f"The {len(older)} class-weights rows were measured with the loss before "
                 "2026-12-02 (PyTorch's weighted mean, divided by each batch's sum of weights); "
                 "classify's loss is now the batch mean of weight × cross-entropy, and they have "
                 "not been measured again."] if older else []),
              f"Machine: {payload['machine']}; train seconds are wall-clock training alone, "
              "wall seconds the whole command (loading, encoding, scoring), on a shared machine.",
              f"The anchor is {p['note']}, about ten times the data of one fold here, with a "
              "bert-base-sized biomedical backbone; the course's rows use a 22.7M-parameter "
              "general-domain one."]
    return lines


if __name__ == "__main__":
    raise SystemExit(main())
